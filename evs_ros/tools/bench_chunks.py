"""``evs bench chunks``: how ``evs fleet``'s chunk borders change the labels (issue 20).

Runs each operating point over a clip once without borders and once cut into chunks (each
from a fresh pipeline, as ``evs fleet`` labels a long bag), with the borders on the keyframe grid
(what ``evs fleet`` does) and one frame off it, and compares the labels frame by frame.
``--warmups N ...`` adds runs on the grid whose chunks start N frames before their border and
drop those labels (a remedy tried for the adaptive policy).

    evs bench chunks --video ../shared/real/camvid/val --chunk-frames 20 --out out/chunks
    evs bench chunks --synth-frames 120 --resolution 1024x512 --out out/chunks_synth
"""

import argparse
import glob
import os
from dataclasses import replace

from evs_ros.tools import common

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench chunks``."""
    parser.add_argument('--out', default='evs_bench_chunks', metavar='DIR',
                        help='directory of chunks.json and chunks.md')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--video', metavar='PATH',
                        help='a video file or a folder of frames (sorted by name)')
    source.add_argument('--synth-frames', type=int, default=0, metavar='N',
                        help='render a synthetic drive of N frames (default when no --video: 90)')
    parser.add_argument('--synth-seed', type=int, default=0)
    parser.add_argument('--max-frames', type=int, default=300, metavar='N')
    parser.add_argument('--resolution', metavar='WxH', help='resize frames to WIDTHxHEIGHT')
    parser.add_argument('--chunk-frames', type=int, default=30, metavar='N',
                        help='chunk length in frames (default: %(default)s)')
    parser.add_argument('--warmups', type=int, nargs='*', default=[], metavar='N',
                        help='also chunks that start N frames before their border')
    common.add_operating_points_argument(parser)
    common.add_config_arguments(parser, operating_point_flag=False)


def read_clip(args):
    """(frames, description) from --video or a synthetic drive."""
    size = common.parse_size(args.resolution)
    if args.video and os.path.isdir(args.video):
        import cv2
        paths = sorted(p for p in glob.glob(os.path.join(args.video, '*'))
                       if p.lower().endswith(IMAGE_SUFFIXES))[:args.max_frames]
        if not paths:
            raise FileNotFoundError(f'--video {args.video}: no image files')
        frames = [cv2.imread(p) for p in paths]
        if size:
            frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        return frames, f'{args.video} ({len(paths)} frames)'
    if args.video:
        from evs_ros.data.video import iter_video
        frames = list(iter_video(args.video, args.max_frames, size))
        return frames, f'{args.video} ({len(frames)} frames)'
    from evs_ros.data.synth import SynthConfig, render_snippet
    width, height = size or (1024, 512)
    count = min(args.synth_frames or 90, args.max_frames)
    frames = [f.image_bgr for f in render_snippet(SynthConfig(
        width=width, height=height, num_frames=count, seed=args.synth_seed))]
    return frames, f'synthetic drive, seed {args.synth_seed}, {count} frames {width}x{height}'


def markdown(report) -> str:
    lines = ['# evs bench chunks', '', f"Clip: {report['clip']}; network "
             f"{report['backend']}; chunks of {report['chunk_frames']} frames.", '',
             '| operating point | borders | frames differing | pixels differing % (all frames) | '
             'pixels differing % (frames that differ) | last differing frame after each '
             'border |', '|---|---|---|---|---|---|']
    for row in report['operating_points']:
        for name, case in row.items():
            if not isinstance(case, dict):
                continue
            lines.append(
                f"| {row['operating_point']} (grid {row['grid']}), {name.replace('_', ' ')} | "
                f"{case['borders'][1:]} | {case['frames_differing']} of {case['frames']} | "
                f"{case['pixels_differing_pct']:.3f} | "
                f"{case['pixels_differing_on_changed_frames_pct']:.3f} | "
                f"{case['frames_after_border_until_identical'][1:]} |")
    return '\n'.join(lines)


def run(args) -> int:
    """Compare chunked and uninterrupted labels per operating point; write JSON + markdown."""
    from evs_ros.bags.borders import border_study
    from evs_ros.models.loading import load_models
    try:
        ops = common.with_explicit_fields(common.parse_operating_points(args.operating_points),
                                          common.explicit_settings(args))
        config = common.build_config(args)
        model, refiner = load_models(config.model, any(op.refine for op in ops))
        common.apply_threads(config, args.tune_allocator)
        frames, clip = read_clip(args)
    except common.USER_ERRORS as error:
        return common.fail('bench chunks', error)
    rows = []
    for op in ops:
        row = border_study(frames, replace(config, operating_point=op), model, refiner,
                           args.chunk_frames, args.warmups)
        rows.append(row)
        print(f"{op.name}: on grid {row['on_grid']['frames_differing']} frames differ, off grid "
              f"{row['off_grid']['frames_differing']}")
    report = {'clip': clip, 'backend': config.model.backend, 'chunk_frames': args.chunk_frames,
              'hardware': common.hardware_info(model), 'operating_points': rows}
    common.write_json(os.path.join(args.out, 'chunks.json'), report)
    common.write_text(os.path.join(args.out, 'chunks.md'), markdown(report))
    print(f'evs bench chunks: wrote {args.out}/chunks.json and chunks.md')
    return 0
