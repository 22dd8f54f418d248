"""``evs bench``: operating points vs the per-frame network, speed and accuracy in one run.

Examples::

    evs bench --quick --out bench_quick             # < 1 min: 512x256, 5 synthetic snippets
    evs bench --out bench_full                      # 2048x1024, 10 held-out synthetic snippets
    evs bench --data ~/cityscapes --split val --backend icnet:icnet.caffemodel --out cs

Runs the per-frame baseline (PERFRAME) and every requested operating point over the same frames
in one process (``evs_ros.evaluation``), synchronously on one core and through the two-worker
runtime on both cores (``runtime_hz``, ``runtime_speedup`` against the per-frame network on
both cores, ``runtime_miou`` from the runtime's own outputs; ``--no-runtime`` skips it), and
writes ``--json`` (default
``OUT/bench.json``), ``OUT/bench.md`` and PNG plots in ``OUT``. The JSON holds ``hardware``,
``resolution``, ``operating_points`` (name, D, S, W, R, adaptive, hz, speedup, miou,
per_class_iou, latency_ms_p50/p99, ...), ``table1``, ``figure6`` and ``figure7`` (paper Tables
1-2, Figures 6-7). Ratios (speedup) are measured in one run; absolute Hz only mean something
next to the ``hardware`` block.
"""

import argparse
import os
import time
from typing import Dict, List

from evs_ros.evaluation import plots
from evs_ros.evaluation.markdown import (
    accuracy_markdown, figures_markdown, runtime_markdown, speed_markdown,
)
from evs_ros.tools import common

QUICK = {'resolution': '512x256', 'snippets': 5, 'figure_propagations': 5}
FULL = {'resolution': '2048x1024', 'snippets': 10, 'figure_propagations': 10}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench``."""
    parser.add_argument('--quick', action='store_true',
                        help=f"about a minute: {QUICK['resolution']}, {QUICK['snippets']} "
                             f"synthetic snippets, Figure 6 up to {QUICK['figure_propagations']}")
    parser.add_argument('--out', default='evs_bench', metavar='DIR',
                        help='directory of the markdown report and plots (default: %(default)s)')
    parser.add_argument('--json', metavar='FILE', help='JSON results (default: OUT/bench.json)')
    parser.add_argument('--figure-propagations', type=int, metavar='N',
                        help='largest N of Figure 6 (0 = skip Figures 6-7; default: '
                             f"{FULL['figure_propagations']}, quick: "
                             f"{QUICK['figure_propagations']})")
    parser.add_argument('--no-runtime', dest='runtime', action='store_false',
                        help='skip the two-worker runtime runs (runtime_speedup, runtime_miou)')
    parser.add_argument('--no-torch-reference', dest='torch_reference', action='store_false',
                        help='skip timing the per-frame network on torch eager when the '
                             'network runs on another engine (speedup_vs_torch)')
    common.add_snippet_arguments(parser)
    common.add_operating_points_argument(parser)
    common.add_config_arguments(parser, operating_point_flag=False)


def settings(args: argparse.Namespace) -> Dict[str, object]:
    """Resolution (w, h) or None, default synthetic snippet count, Figure 6 range."""
    preset = QUICK if args.quick else FULL
    resolution = args.resolution
    if resolution is None and (args.quick or not args.data):
        resolution = preset['resolution']
    figure = args.figure_propagations
    return {'size_wh': common.parse_size(resolution), 'snippets': preset['snippets'],
            'figure_propagations': preset['figure_propagations'] if figure is None else figure}


def write_markdown(report, path: str, images: List[str]) -> None:
    """Return the human-readable report: hardware, speed table, accuracy, Table 1, figures."""
    hw = report['hardware']
    lines = ['# evs bench', '',
             f"Hardware: {common.hardware_line(hw)}, device {hw['device']}; torch {hw['torch']} "
             f"({hw['torch_threads']} threads), OpenCV {hw['opencv']} "
             f"({hw['opencv_threads']} threads).",
             f"Resolution {report['resolution']}, {len(report['snippets'])} snippets "
             f"({report['data']['kind']}), backend `{report['backend']}`, refiner "
             f"`{report['refiner'] or 'none'}`, {report['elapsed_s']} s in all.",
             engine_line(report), '',
             *[line for note in report.get('accuracy_notes', ())
               for line in (f'**Note:** {note}', '')],
             *speed_markdown(report), *runtime_markdown(report), *accuracy_markdown(report),
             *figures_markdown(report)]
    lines += [f'![{name}]({name})' for name in images]
    common.write_text(path, '\n'.join(lines))


def engine_line(report) -> str:
    """'Engine: openvino 2026.4.1 (network and Refiner); ...' with the torch reference."""
    versions = report.get('engines') or {}
    name = str(report.get('engine', 'torch'))
    version = versions.get(name.split(' ')[0])
    refiner = report.get('refiner_engine')
    precision = report.get('precision', 'fp32')
    line = (f"Engine: {name}{f' {version}' if version else ''} {precision} (network"
            f"{', the Refiner on ' + refiner if refiner and refiner != name else ''}"
            f"{' and Refiner' if refiner == name else ''}); the per-frame baseline PERFRAME "
            'runs on it too.')
    if report.get('perframe_torch_hz') and not name.startswith('torch'):
        line += (f" Per-frame on torch eager: {report['perframe_torch_hz']} Hz (1 core)"
                 + (f", {report['perframe_torch_hz_both_cores']} Hz (both cores)"
                    if report.get('perframe_torch_hz_both_cores') else '') + '.')
    return line


def accuracy_notes(backend: str, class_names) -> List[str]:
    """Why the accuracy columns of this run mean nothing (empty when they are meaningful)."""
    from evs_ros.data.classes import class_key
    from evs_ros.data.labels import CLASS_NAMES
    from evs_ros.models.hf_random import has_random_weights
    notes = []
    keys = [class_key(name) for name in class_names]
    if keys and keys != [class_key(name) for name in CLASS_NAMES]:
        shown = ', '.join(list(class_names)[:5]) + (', ...' if len(class_names) > 5 else '')
        notes.append(f'the network predicts {len(class_names)} classes that are not the 19 '
                     f'Cityscapes classes ({shown}): the mIoU columns compare its ids with '
                     'Cityscapes trainIds and mean nothing; the speed columns hold.')
    if has_random_weights(backend):
        notes.append(f'`{backend}` has random weights (written for speed benchmarks): the '
                     'mIoU columns mean nothing; the speed columns hold.')
    return notes


def run(args: argparse.Namespace) -> int:
    """Benchmark, then write JSON, markdown and plots; prints the speed table."""
    start = time.perf_counter()
    try:
        chosen = settings(args)
        report, model, _ = common.run_evaluation(
            args, chosen['size_wh'], chosen['figure_propagations'],
            default_synth=chosen['snippets'])
    except common.USER_ERRORS as error:
        return common.fail('bench', error)
    hardware = {**common.hardware_info(model), 'allocator_tuned': bool(args.tune_allocator)}
    class_names = [str(name) for name in getattr(model, 'class_names', None) or ()]
    report = {'hardware': hardware, 'quick': bool(args.quick), **report,
              'class_names': class_names,
              'accuracy_notes': accuracy_notes(report['backend'], class_names),
              'elapsed_s': round(time.perf_counter() - start, 1)}
    json_path = args.json or os.path.join(args.out, 'bench.json')
    common.write_json(json_path, report)
    images = plots.write_all(report, args.out)
    write_markdown(report, os.path.join(args.out, 'bench.md'), images)
    print('\n'.join(speed_markdown(report) + runtime_markdown(report)))
    print(f"wrote {json_path}, {os.path.join(args.out, 'bench.md')} and {len(images)} plots")
    return 0
