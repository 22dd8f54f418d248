"""``evs demo``: the main job. No user data needed.

Starts the installed evs_node, plays built-in clips into it over real DDS at camera rate (a
synthetic driving snippet with exact ground truth, and the real street clip bikes.mp4), and writes
to ``--out``: an overlay video per clip, a contact sheet PNG, ``summary.json`` and ``summary.md``
(per-frame latency percentiles, output Hz, keyframes, drops, and mIoU on the synthetic clip).

Which network labels which clip: without ``--backend`` (or ``model.backend`` in ``--params``),
the real clip gets ``model.backend: auto`` (the real Cityscapes network when it is in the
cache, else the shipped one) and the synthetic clip the shipped ICNet, the network that knows
synthetic streets; each network runs in its own node. The summary and the contact sheet name the
network of every clip.
"""

import math
import os
import time
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from evs_ros.pipeline.stats import percentiles as stage_percentiles
from evs_ros.tools import common

CLIPS = ('synth', 'bikes')
REAL_CLIPS = ('bikes',)


def add_arguments(parser) -> None:
    """Declare the options of ``evs demo`` (``--params`` is the node's params file)."""
    parser.add_argument('--out', default='out/demo', help='output directory')
    common.add_config_arguments(parser, threads=False)
    parser.add_argument('--clips', default=','.join(CLIPS), help='comma list of synth,bikes')
    parser.add_argument('--synth-size', default='1024x512', help='WxH of the synthetic clip')
    parser.add_argument('--synth-frames', type=int, default=60)
    parser.add_argument('--bikes-frames', type=int, default=250)
    parser.add_argument('--rate-hz', type=float, default=17.0,
                        help='camera rate (Cityscapes: 17 Hz)')
    parser.add_argument('--seed', type=int, default=7, help='seed of the synthetic clip')


def load_clip(name: str, args) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Frames (BGR uint8) and, for synthetic clips, ground-truth trainIds (else empty)."""
    if name == 'synth':
        from evs_ros.data.synth import SynthConfig, render_snippet
        width, height = common.parse_size(args.synth_size)
        frames, labels = [], []
        for frame in render_snippet(SynthConfig(width=width, height=height,
                                                num_frames=args.synth_frames, seed=args.seed)):
            frames.append(frame.image_bgr)
            labels.append(frame.labels)
        return frames, labels
    if name == 'bikes':
        from evs_ros.data.sample_clips import ensure_bikes_clip, read_frames
        return read_frames(ensure_bikes_clip(), args.bikes_frames), []
    raise ValueError(f'unknown clip {name!r}; choose from {", ".join(CLIPS)}')


def percentiles(values) -> Dict[str, float]:
    """p50, p90, p99 and p100 (the maximum); NaN without values (shown as nan)."""
    return stage_percentiles(values, (50, 90, 99, 100), digits=None, empty=math.nan)


def clip_summary(record, gt_labels: List[np.ndarray]) -> dict:
    """Summarise one played clip: counts, rates, latency and (with ground truth) mIoU."""
    outputs = [record.outputs.get(s, {}) for s in record.stamps_ns]
    statuses = [o['status'] for o in outputs if 'status' in o]
    received = sum('labels' in o for o in outputs)
    last = statuses[-1] if statuses else {}
    summary = {
        'frames_sent': len(record.stamps_ns), 'frames_with_labels': received,
        'frames_without_labels': [i for i, output in enumerate(outputs) if 'labels' not in output],
        'input_hz': record.rate_hz,
        'output_hz': received / record.play_s if record.play_s > 0 else float('nan'),
        'keyframes': sum(bool(s['keyframe_requested']) for s in statuses),
        'refined_frames': sum(bool(s['refined']) for s in statuses),
        'dropped_by_node': int(last.get('frames_dropped', 0)),
        'rejected_by_node': int(last.get('frames_rejected', 0)),
        'latency_ms': percentiles(record.latency_ms.values()),
        'node_total_ms': percentiles(s['total_ms'] for s in statuses),
        'flow_ms': percentiles(s['flow_ms'] for s in statuses if not s['keyframe_requested']),
        # network time of the keyframe results the frames adopted (0 on the others)
        'inference_ms': percentiles(s['inference_ms'] for s in statuses if s['inference_ms'] > 0),
        'inconsistent_fraction_mean': float(np.nanmean(
            [s['inconsistent_fraction'] for s in statuses] or [np.nan])),
    }
    if gt_labels:
        from evs_ros.data.metrics import ConfusionMatrix
        confusion = ConfusionMatrix(19)
        for output, gt in zip(outputs, gt_labels):
            if 'labels' in output:
                confusion.update(output['labels'], gt)
        summary['miou'] = confusion.miou()
    return summary


def write_video(path: str, record, frames: List[np.ndarray], rate_hz: float) -> int:
    """Overlay video (mp4); frames without output show the input with a red border."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), rate_hz, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f'cannot write {path} (OpenCV has no mp4v encoder?)')
    written = 0
    for stamp_ns, frame in zip(record.stamps_ns, frames):
        overlay = record.outputs.get(stamp_ns, {}).get('overlay_bgr')
        if overlay is None:
            overlay = cv2.copyMakeBorder(frame[4:-4, 4:-4], 4, 4, 4, 4, cv2.BORDER_CONSTANT,
                                         value=(0, 0, 255))
        writer.write(overlay)
        written += 1
    writer.release()
    return written


def contact_sheet(path: str, rows: List[List[np.ndarray]], tile_width: int = 320,
                  captions: Sequence[str] = ()) -> None:
    """Rows of [input, overlay, mask] tiles, resized to ``tile_width``, as one PNG.

    A row's caption (which clip, which network) is written across its top.
    """
    lines = []
    for row, tiles in enumerate(rows):
        resized = []
        for tile in tiles:
            if tile.ndim == 2:
                tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
            scale = tile_width / tile.shape[1]
            resized.append(cv2.resize(tile, (tile_width, int(round(tile.shape[0] * scale)))))
        height = max(t.shape[0] for t in resized)
        line = np.hstack([cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 2,
                                             cv2.BORDER_CONSTANT) for t in resized])
        if row < len(captions) and captions[row]:
            _caption(line, captions[row])
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    sheet = np.vstack([cv2.copyMakeBorder(line, 0, 2, 0, width - line.shape[1],
                                          cv2.BORDER_CONSTANT) for line in lines])
    cv2.imwrite(path, sheet)


def _caption(tile: np.ndarray, text: str) -> None:
    """White text on a dark band at the top of ``tile`` (in place)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (width, height), _ = cv2.getTextSize(text, font, scale, 1)
    tile[:height + 8, :min(tile.shape[1], width + 8)] //= 3
    cv2.putText(tile, text, (4, height + 3), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def sheet_rows(record, frames, count: int = 3) -> List[List[np.ndarray]]:
    rows = []
    for index in np.linspace(1, len(frames) - 1, count).astype(int):
        output = record.outputs.get(record.stamps_ns[index], {})
        if 'overlay_bgr' in output and 'mask' in output:
            rows.append([frames[index], output['overlay_bgr'], output['mask']])
    return rows


def markdown(summary: dict) -> str:
    lines = [f"# evs demo ({summary['operating_point']})", '',
             f"Hardware: {summary['hardware']}", '',
             '| clip | network | frames sent | with labels | in Hz | out Hz | keyframes | '
             'dropped | latency p50 / p99 ms | mIoU |', '|---' * 10 + '|']
    for name, clip in summary['clips'].items():
        miou = f"{100 * clip['miou']:.1f}" if 'miou' in clip else '-'
        lines.append(f"| {name} | {clip['network']} | {clip['frames_sent']} | "
                     f"{clip['frames_with_labels']} | "
                     f"{clip['input_hz']:.1f} | {clip['output_hz']:.1f} | {clip['keyframes']} | "
                     f"{clip['dropped_by_node']} | {clip['latency_ms']['p50']:.1f} / "
                     f"{clip['latency_ms']['p99']:.1f} | {miou} |")
    return '\n'.join(lines) + '\n'


def clip_networks(config, clip_names: Sequence[str]) -> Dict[str, str]:
    """Return the backend SPEC (``auto`` resolved) that labels each clip (module docstring)."""
    from evs_ros.models.loading import AUTO, SHIPPED, auto_backend
    chosen = config.model.backend
    real = auto_backend() if chosen == AUTO else chosen
    return {name: real if name in REAL_CLIPS or chosen != AUTO else SHIPPED
            for name in clip_names}


def run(args) -> int:
    from tqdm import tqdm
    try:
        config = common.build_config(args)  # validated here: one line instead of a node log
        clips = {name: load_clip(name, args) for name in args.clips.split(',') if name}
        networks = clip_networks(config, list(clips))
    except common.USER_ERRORS as error:
        return common.fail('demo', error)
    os.makedirs(args.out, exist_ok=True)
    summary = {'operating_point': config.operating_point.name,
               'hardware': common.hardware_line(common.hardware_info()), 'clips': {}}
    rows, captions = [], []
    total = sum(len(frames) for frames, _ in clips.values())
    with tqdm(total=total, desc='frames', unit='f') as bar:
        for spec in dict.fromkeys(networks.values()):  # one node per network, in clip order
            names = [name for name in clips if networks[name] == spec]
            for name, record in _play_clips(args, spec, names, clips, bar):
                frames, gt_labels = clips[name]
                described = describe_backend(spec)
                summary['clips'][name] = {'network': described, 'backend': spec,
                                          **clip_summary(record, gt_labels)}
                write_video(os.path.join(args.out, f'{name}_overlay.mp4'), record, frames,
                            args.rate_hz)
                clip_rows = sheet_rows(record, frames)
                rows += clip_rows
                captions += [f'{name}: {described}'] * len(clip_rows)
    if rows:
        contact_sheet(os.path.join(args.out, 'contact_sheet.png'), rows, captions=captions)
    common.write_json(os.path.join(args.out, 'summary.json'), summary)
    common.write_text(os.path.join(args.out, 'summary.md'), markdown(summary))
    print(markdown(summary))
    print(f'wrote {args.out}/: *_overlay.mp4, contact_sheet.png, summary.json, summary.md '
          f'({time.strftime("%H:%M:%S")})')
    # Drops under overload are by design (never a backlog); a clip with no output is a failure.
    return 0 if all(c['frames_with_labels'] > 0 for c in summary['clips'].values()) else 1


def describe_backend(spec: str) -> str:
    """Say which network labels a clip (:func:`evs_ros.models.loading.describe_backend`)."""
    from evs_ros.models.loading import describe_backend as describe
    return describe(spec)


def _play_clips(args, spec: str, names: Sequence[str], clips, bar):
    """Play ``names`` into one node running ``spec``; yields (name, ClipRecord)."""
    from evs_ros.testing.session import NodeSession
    overrides = {name: value if value != '' else "''"
                 for name, value in common.explicit_settings(args).items()}
    overrides['model.backend'] = spec
    with NodeSession(overrides, os.path.join(args.out, f"node_{'_'.join(names)}.log"),
                     params_file=args.params) as session:
        stamp0_ns = None
        for name in names:
            bar.set_postfix_str(name)
            kwargs = {} if stamp0_ns is None else {'stamp0_ns': stamp0_ns}
            record = session.play(name, clips[name][0], args.rate_hz, progress=bar.update,
                                  **kwargs)
            stamp0_ns = record.stamps_ns[-1] + 10_000_000_000
            yield name, record
