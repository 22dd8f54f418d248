r"""``evs bench cameras``: how many cameras at a frame rate one node serves on this machine.

N cameras (1, 2, ... until one is not served) share one runtime, as in the node: one network,
one flow worker per camera. Served = every frame labelled and no growing backlog
(:mod:`evs_ros.evaluation.cameras`); each camera's mIoU is scored on its frames. Writes
``cameras.json`` (key ``cameras_at_<rate>hz``), ``cameras.md``.

    evs synth --out data_cache/synth_2048 --split test --snippets 8 --width 2048 --height 1024
    evs bench cameras --data data_cache/synth_2048 --split test --operating-point EVS12 \
        --set flow.scale=0.5 --out docs/bench/cameras
"""

import argparse
import os

from evs_ros.tools import common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench cameras``."""
    parser.add_argument('--out', default='evs_bench_cameras', metavar='DIR')
    parser.add_argument('--data', metavar='ROOT', help='Cityscapes-layout dataset labelled on '
                        'every frame (`evs synth`); default: render synthetic test snippets')
    parser.add_argument('--split', default='test')
    parser.add_argument('--clips', type=int, default=4, help='distinct clips (cameras reuse '
                        'them in turn)')
    parser.add_argument('--resolution', default='2048x1024', metavar='WxH')
    parser.add_argument('--rate-hz', type=float, default=17.0)
    parser.add_argument('--seconds', type=float, default=10.0, help='length of each trial')
    parser.add_argument('--max-cameras', type=int, default=8)
    parser.add_argument('--score-stride', type=int, default=2,
                        help='score every N-th frame of each camera (memory)')
    common.add_config_arguments(parser)


def load(args):
    """(config, model, refiner, clips) for the trials."""
    from evs_ros.evaluation.cameras import CameraClip
    from evs_ros.evaluation.snippets import labelled_clips
    from evs_ros.models.loading import load_models
    config = common.build_config(args)
    model, refiner = load_models(config.model, config.operating_point.refine)
    clips = [CameraClip(name, frames, labels) for name, frames, labels in labelled_clips(
        args.data, args.split, args.clips, size_wh=common.parse_size(args.resolution))]
    return config, model, refiner, clips


def markdown(report) -> str:
    """Return the trials as a table: one row per camera count."""
    lines = ['# evs bench cameras', '', f"Hardware: {report['hardware_line']}. "
             f"{report['resolution']} at {report['rate_hz']:g} Hz, operating point "
             f"{report['operating_point']}, flow computed at scale {report['flow_scale']:g}, "
             f"backend `{report['backend']}` on {report['engine']}, {report['seconds']:g} s per "
             'trial.', '',
             f"**Cameras served: {report['cameras_served']}**", '',
             '| cameras | served | labelled / sent | unlabelled after the first second | '
             'latency p50 / p99 ms | keyframes | mIoU per camera % |',
             '|---|---|---|---|---|---|---|']
    for trial in report['trials']:
        cams = trial['per_camera']
        latency = ' '.join(f"{c['latency_ms']['p50']}/{c['latency_ms']['p99']}" for c in cams)
        mious = ' '.join('-' if c['miou'] is None else f"{100 * c['miou']:.1f}" for c in cams)
        lines.append(f"| {trial['cameras']} | {'yes' if trial['served'] else 'no'} | "
                     f"{sum(c['frames_labelled'] for c in cams)} / "
                     f"{sum(c['frames_sent'] for c in cams)} | "
                     f"{sum(c['missing_after_warm_up'] for c in cams)} | {latency} | "
                     f"{sum(c['keyframes'] for c in cams)} | {mious} |")
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace) -> int:
    """Run the trials; write JSON and markdown."""
    from evs_ros.config import effective_flow
    from evs_ros.flow import FlowEstimator
    from evs_ros.evaluation import model_class_names
    from evs_ros.evaluation.cameras import CameraTrial, camera_capacity
    try:
        config, model, refiner, clips = load(args)
    except common.USER_ERRORS as error:
        return common.fail('bench cameras', error)
    common.apply_threads(config, args.tune_allocator)
    common.warm_up_engines(model, refiner, clips[0].frames[0], config)
    trial = CameraTrial(model, refiner, config, len(model_class_names(model)), args.rate_hz,
                        args.seconds, args.score_stride)
    result = camera_capacity(trial, clips, args.max_cameras, progress=lambda t: print(
        f"{t['cameras']} cameras: {'served' if t['served'] else 'NOT served'}", flush=True))
    hardware = common.hardware_info(model)
    report = {'hardware': hardware, 'hardware_line': common.hardware_line(hardware),
              'resolution': args.resolution, 'rate_hz': args.rate_hz, 'seconds': args.seconds,
              'operating_point': config.operating_point.name, 'backend': config.model.backend,
              **common.engine_report(model, refiner),
              'flow_scale': FlowEstimator(effective_flow(config)).scale_for(
                  clips[0].frames[0].shape[1]), 'config': _settings(config),
              f'cameras_at_{args.rate_hz:g}hz': result['cameras_served'], **result}
    common.write_json(os.path.join(args.out, 'cameras.json'), report)
    common.write_text(os.path.join(args.out, 'cameras.md'), markdown(report))
    print(markdown(report))
    return 0


def _settings(config) -> dict:
    from evs_ros.config import to_flat
    return {key: value for key, value in to_flat(config).items()
            if key.split('.')[0] in ('operating_point', 'flow', 'runtime')}
