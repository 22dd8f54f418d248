"""``evs run``: segment a video file offline with an operating point (paper §3, design §1).

Example::

    evs run street.mp4 --out out/street --operating-point EVS05 --max-frames 300

Runs the synchronous :class:`~evs_ros.pipeline.pipeline.EvsPipeline` over every frame and writes,
in ``--out``:

* ``labels/000000.png`` ... : uint8 trainIds per frame (255 = ignore), at the processed size;
* ``overlay.mp4``: the frames blended with the class colours (Cityscapes palette by default);
* ``summary.json``: Hz (frames / pipeline wall time, I/O excluded), keyframe count and indices,
  per-frame frames-since-keyframe and IAM inconsistent fraction (null when not computed),
  per-stage timing percentiles (ms).
"""

import argparse
import os
import time
from dataclasses import replace
from typing import Dict, List

import cv2

from evs_ros.data.json_values import finite_or_none
from evs_ros.pipeline.results import STAGES
from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs run``."""
    parser.add_argument('video', help='input video file (anything OpenCV decodes)')
    parser.add_argument('--out', required=True, metavar='DIR', help='output directory')
    common.add_config_arguments(parser)
    parser.add_argument('--max-frames', type=int, metavar='N', help='stop after N frames')
    parser.add_argument('--resize', metavar='WxH', help='resize frames before processing')
    parser.add_argument('--no-overlay', dest='overlay', action='store_false',
                        help='do not write overlay.mp4')


def _frame_total(path: str, max_frames) -> int:
    capture = cv2.VideoCapture(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    count = max(count, 0)
    return min(count, max_frames) if max_frames and count else (max_frames or count or None)


def _stage_percentiles(infos) -> Dict[str, Dict[str, float]]:
    stages = {}
    for key in STAGES + ('total_ms',):
        values = [getattr(info, key) for info in infos if getattr(info, key) > 0.0]
        if values:
            stages[key] = {**percentiles(values), 'count': len(values)}
    return stages


def summarize(infos: List, wall_s: float, extra: Dict[str, object]) -> Dict[str, object]:
    """Return ``summary.json``'s dict from the frames' :class:`FrameInfo` and the wall time."""
    keyframes = [index for index, info in enumerate(infos) if info.keyframe]
    fractions = [info.inconsistent_fraction for info in infos]
    return {
        **extra, 'frames': len(infos),
        'hz': round(len(infos) / wall_s, 3) if wall_s > 0 else None,
        'pipeline_wall_s': round(wall_s, 4),
        'keyframes': len(keyframes), 'keyframe_indices': keyframes,
        'frames_since_keyframe': [info.frames_since_keyframe for info in infos],
        'refined': sum(info.refined for info in infos),
        'inconsistent_fraction': [finite_or_none(v) for v in fractions],
        'stage_ms': _stage_percentiles(infos),
    }


def _build_pipeline(args):
    from evs_ros.models.loading import load_models
    from evs_ros.pipeline.pipeline import EvsPipeline
    config = common.build_config(args)
    model, refiner = load_models(config.model, config.operating_point.refine)
    if refiner is None:  # report what actually runs
        config = replace(config, model=replace(config.model, refiner=''))
    common.apply_threads(config, args.tune_allocator)
    return EvsPipeline(config, model, refiner), model, config


def process_video(args, pipeline, model, config) -> Dict[str, object]:
    """Run the pipeline over the video, writing labels and the overlay; returns the summary."""
    from tqdm import tqdm

    from evs_ros.data.classes import visualizer_for_model
    from evs_ros.data.video import VideoWriter, iter_video, video_fps
    from evs_ros.pipeline.network_input import describe_input
    labels_dir = os.path.join(args.out, 'labels')
    os.makedirs(labels_dir, exist_ok=True)
    visualizer = visualizer_for_model(config, model)
    overlay_path = os.path.join(args.out, 'overlay.mp4')
    writer = VideoWriter(overlay_path, video_fps(args.video)) if args.overlay else None
    frames = iter_video(args.video, args.max_frames, common.parse_size(args.resize))
    infos, wall_s = [], 0.0
    try:
        for index, frame in enumerate(tqdm(frames, total=_frame_total(args.video,
                                                                      args.max_frames),
                                           desc='evs run', unit='frame')):
            start = time.perf_counter()
            result = pipeline.process(frame)
            wall_s += time.perf_counter() - start
            infos.append(result.info)
            cv2.imwrite(os.path.join(labels_dir, f'{index:06d}.png'), result.labels)
            if writer is not None:
                overlay_rgb = visualizer.overlay(frame, visualizer.colorize(result.labels))
                writer.write(cv2.cvtColor(overlay_rgb, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.close()
    height, width = frame.shape[:2] if infos else (0, 0)
    return summarize(infos, wall_s, {
        'video': os.path.abspath(args.video), 'resolution': f'{width}x{height}',
        'operating_point': config.operating_point.name, 'backend': config.model.backend,
        'refiner': config.model.refiner, 'engine': common.engine_report(model)['engine'],
        'network_input': describe_input(model),
        'class_names': list(visualizer.class_names),
        'labels_dir': labels_dir, 'overlay': overlay_path if writer is not None else None})


def run(args: argparse.Namespace) -> int:
    """Segment the video; prints Hz and the output directory."""
    try:
        pipeline, model, config = _build_pipeline(args)
        summary = process_video(args, pipeline, model, config)
    except common.USER_ERRORS + (IOError,) as error:
        return common.fail('run', error)
    common.write_json(os.path.join(args.out, 'summary.json'), summary)
    print(f"{summary['frames']} frames, {summary['keyframes']} keyframes, {summary['hz']} Hz "
          f"(pipeline only, network on {summary['engine']}); wrote {args.out}")
    return 0
