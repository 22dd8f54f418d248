"""``evs bench flow``: what a propagated frame costs on the CPU (paper §3.3, §4.3.1).

Times, per resolution and frame source, on one OpenCV thread by default (the paper runs DIS on
one core):

* ``dis_ms``: DIS alone, full resolution (``FlowEstimator.calc``);
* ``warp_labels_ms``: nearest warp of full-resolution labels;
* ``resize_flow_ms``: full-resolution flow to the probability resolution (1/4);
* ``warp_probs_ms``: bilinear warp of 19-channel probabilities at 1/4 resolution;
* ``iam_ms``: ``compute_iam`` at 1/4 resolution on the already resized flow;
* ``propagate_ms``: DIS plus the pipeline's own propagation step
  (:meth:`evs_ros.pipeline.state.PropagationState.propagate`: label warp, flow resize, IAM,
  composition of the pending probability flow), from a keyframe state renewed every 5 frames
  (S = 5), i.e. what the flow worker spends on a propagated frame without refinement (gray
  conversion excluded, it is ``to_gray_ms``);
* ``propagate_refine_ms``: the same plus the warp of the probabilities a refinement needs
  (operating points with R on; the Refiner itself runs on the inference worker);
* ``farneback_ms``: the paper's Farneback comparison (Fig. 6 setting).

Each timing has ``min``, ``median``, ``p90`` and ``mean`` in milliseconds;
``ratio_propagate_to_dis`` is median over median (target: <= 1.3 at full resolution) and
``ratio_propagate_to_dis_min`` min over min (less sensitive to other processes on a shared
machine). Stages are timed round-robin. Absolute times only mean something next to the
``hardware`` block written with them.
"""

import argparse
import time
from dataclasses import asdict, replace
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

from evs_ros.config import FlowConfig, IamConfig
from evs_ros.data.synth import panning_frames
from evs_ros.flow import FlowEstimator, resize_flow, to_gray, warp_dense, warp_labels
from evs_ros.flow import warp as warp_module
from evs_ros.pipeline.allocator import tune_allocator
from evs_ros.pipeline.iam import compute_iam
from evs_ros.pipeline.state import PropagationState
from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common

TARGET_RATIO = 1.3
NUM_CLASSES = 19
KEYFRAME_INTERVAL = 5  # propagate_ms: a fresh keyframe state every 5 frames (EVS07-like)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench flow``."""
    parser.add_argument('--json', metavar='FILE', help='write the results as JSON here')
    parser.add_argument('--resolutions', default='2048x1024,1024x512',
                        help='comma-separated WIDTHxHEIGHT list (default: %(default)s)')
    parser.add_argument('--sources', default='real,synthetic',
                        help="comma-separated frame sources: 'real' (bikes.mp4 resized) and/or "
                             "'synthetic' (moving texture) (default: %(default)s)")
    parser.add_argument('--threads', type=int, default=1,
                        help='cv2.setNumThreads (default: %(default)s, the paper setting)')
    parser.add_argument('--iterations', type=int, default=50, help='timed iterations per stage')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations per stage')
    parser.add_argument('--farneback-iterations', type=int, default=5,
                        help='timed Farneback calls (slow; 0 = skip)')
    parser.add_argument('--preset', choices=('ultrafast', 'fast', 'medium'),
                        help='DIS preset (shortcut for flow.dis_preset; default ultrafast, the '
                             'paper setting)')
    parser.add_argument('--no-tune-allocator', dest='tune_allocator', action='store_false',
                        help='keep glibc malloc defaults (see evs_ros.pipeline.allocator)')
    common.add_config_arguments(parser, operating_point_flag=False, threads=False, model=False)
    parser.add_argument('--prob-downscale', type=int, default=4,
                        help='probability / IAM resolution = frame / this (default: %(default)s)')


def _stats(times_ms: List[float]) -> Dict[str, float]:
    values = np.asarray(times_ms)
    summary = percentiles(values, (0, 50, 90), digits=4)
    return {'min': summary['p0'], 'median': summary['p50'], 'p90': summary['p90'],
            'mean': round(float(values.mean()), 4), 'n': int(values.size)}


def _time_interleaved(stages: Dict[str, Callable[[int], object]], iterations: int,
                      warmup: int) -> Dict[str, List[float]]:
    """Time every stage once per iteration, round-robin; return ms per call and stage.

    Round-robin makes load changes on a shared machine hit all stages alike; ``warmup``
    untimed rounds come first.
    """
    for index in range(warmup):
        for step in stages.values():
            step(index)
    times_ms = {name: [] for name in stages}
    for index in range(iterations):
        for name, step in stages.items():
            start = time.perf_counter()
            step(index)
            times_ms[name].append((time.perf_counter() - start) * 1e3)
    return times_ms


def real_frames(size_wh: Tuple[int, int], count: int) -> List[np.ndarray]:
    """Gray uint8 frames of bikes.mp4 resized to ``size_wh`` (fetched once, see sample_clips)."""
    from evs_ros.data.sample_clips import ensure_bikes_clip, read_frames
    return [to_gray(frame) for frame in read_frames(ensure_bikes_clip(), count, size_wh)]


def _fake_predictions(gray: np.ndarray, downscale: int):
    """Piecewise-constant labels from quantised intensity, and matching 19-class probabilities."""
    labels = cv2.medianBlur((gray // 14).astype(np.uint8), 5) % NUM_CLASSES
    height, width = gray.shape
    small_hw = (height // downscale, width // downscale)
    labels_small = cv2.resize(labels, small_hw[::-1], interpolation=cv2.INTER_NEAREST)
    probs = np.full((NUM_CLASSES,) + small_hw, 0.1 / NUM_CLASSES, np.float32)
    np.put_along_axis(probs, labels_small[None].astype(np.intp), 0.9, axis=0)
    return labels, labels_small, probs


def bench_one(frames: List[np.ndarray], args, flow_config: FlowConfig,
              iam_config: IamConfig) -> Dict[str, object]:
    """Time every stage on consecutive pairs of ``frames`` (gray uint8, one size)."""
    height, width = frames[0].shape
    pairs = len(frames) - 1
    estimator = FlowEstimator(flow_config)
    labels, labels_small, probs = _fake_predictions(frames[0], args.prob_downscale)
    small_hw = labels_small.shape
    flows = [estimator.calc(frames[i + 1], frames[i]) for i in range(pairs)]
    flows_small = [resize_flow(flow, small_hw) for flow in flows]

    keyframe = PropagationState(labels=labels, labels_low=labels_small, probs=probs)
    current = {'state': keyframe}

    def propagate(i, refine=False):
        flow = estimator.calc(frames[i % pairs + 1], frames[i % pairs])
        if i % KEYFRAME_INTERVAL == 0:
            current['state'] = keyframe.copy()
        current['state'].propagate(flow, iam_config, labels_from=flow_config.labels_from)
        if refine:
            current['state'].aligned_probs()

    farneback = FlowEstimator(FlowConfig(method='farneback'))
    color = cv2.cvtColor(frames[0], cv2.COLOR_GRAY2BGR)
    stages = {
        'to_gray_ms': lambda i: to_gray(color),
        'dis_ms': lambda i: estimator.calc(frames[i % pairs + 1], frames[i % pairs]),
        'warp_labels_ms': lambda i: warp_labels(labels, flows[i % pairs]),
        'resize_flow_ms': lambda i: resize_flow(flows[i % pairs], small_hw),
        'warp_probs_ms': lambda i: warp_dense(probs, flows_small[i % pairs]),
        'iam_ms': lambda i: compute_iam(labels_small, flows_small[i % pairs], iam_config),
        'propagate_ms': propagate,
        'propagate_refine_ms': lambda i: propagate(i, refine=True),
    }
    entry = {'width': width, 'height': height, 'prob_size_wh': [small_hw[1], small_hw[0]],
             'prob_channels': NUM_CLASSES}
    for name, times_ms in _time_interleaved(stages, args.iterations, args.warmup).items():
        entry[name] = _stats(times_ms)
    if args.farneback_iterations > 0:
        farneback_stage = {'farneback_ms': lambda i: farneback.calc(frames[i % pairs + 1],
                                                                    frames[i % pairs])}
        times_ms = _time_interleaved(farneback_stage, args.farneback_iterations, 1)
        entry['farneback_ms'] = _stats(times_ms['farneback_ms'])
    ratio = entry['propagate_ms']['median'] / entry['dis_ms']['median']
    entry['ratio_propagate_to_dis'] = round(ratio, 3)
    # Minimum over minimum: the cost without interference, robust on a busy shared machine.
    entry['ratio_propagate_to_dis_min'] = round(
        entry['propagate_ms']['min'] / entry['dis_ms']['min'], 3)
    entry['meets_target'] = bool(ratio <= TARGET_RATIO)
    return entry


def _print_table(results: List[Dict[str, object]]) -> None:
    columns = ['dis_ms', 'warp_labels_ms', 'resize_flow_ms', 'warp_probs_ms', 'iam_ms',
               'propagate_ms', 'propagate_refine_ms', 'farneback_ms']
    print('median ms; ratio = propagate / dis (median, and min / min)')
    print('source     size        ' + ' '.join(f'{c[:-3][:12]:>12}' for c in columns) + '   ratio')
    for entry in results:
        cells = ' '.join(f'{entry[c]["median"]:12.2f}' if c in entry else f'{"-":>12}'
                         for c in columns)
        size = f'{entry["width"]}x{entry["height"]}'
        print(f'{entry["source"]:<10} {size:<11} {cells}   '
              f'{entry["ratio_propagate_to_dis"]:.2f} {entry["ratio_propagate_to_dis_min"]:.2f}')


def run(args) -> int:
    """Run the benchmark; print a table of medians (ms) and optionally write JSON."""
    try:
        config = common.build_config(args)
        sizes = common.parse_sizes(args.resolutions)
    except common.USER_ERRORS as error:
        return common.fail('bench flow', error)
    cv2.setNumThreads(args.threads)
    allocator_tuned = args.tune_allocator and tune_allocator()
    flow_config = replace(config.flow, max_width=0)  # DIS at the full resolution measured
    if args.preset:
        flow_config = replace(flow_config, dis_preset=args.preset)
    iam_config = config.iam
    frame_count = min(args.iterations, 9) + 1  # 9 frame pairs, cycled; 16 MB of flow each
    loaders = {'real': real_frames, 'synthetic': panning_frames}
    results = []
    for source in [s.strip() for s in args.sources.split(',') if s.strip()]:
        if source not in loaders:
            raise ValueError(f'unknown source {source!r}; use real and/or synthetic')
        for size_wh in sizes:
            entry = bench_one(loaders[source](size_wh, frame_count), args, flow_config,
                              iam_config)
            results.append({'source': source, **entry})
    report = {'benchmark': 'flow', 'target_ratio': TARGET_RATIO,
              'iterations': args.iterations, 'warmup': args.warmup,
              'flow_config': asdict(flow_config), 'iam_config': asdict(iam_config),
              'flow_parameters': FlowEstimator(flow_config).parameters,
              'allocator_tuned': bool(allocator_tuned),
              'hardware': {**common.hardware_info(),
                           'remap_relative_map': bool(warp_module._USE_RELATIVE_MAP)},
              'results': results}
    _print_table(results)
    if args.json:
        common.write_json(args.json, report)
        print(f'wrote {args.json}')
    return 0


def main(argv=None) -> int:
    """Standalone entry point: ``python -m evs_ros.tools.bench_flow``."""
    parser = argparse.ArgumentParser(prog='evs bench flow', description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    raise SystemExit(main())
