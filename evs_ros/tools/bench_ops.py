"""``evs bench``: operating points vs the per-frame network, speed and accuracy in one run.

Examples::

    evs bench --quick --out bench_quick             # < 1 min: 512x256, 5 synthetic snippets
    evs bench --out bench_full                      # 2048x1024, 10 held-out synthetic snippets
    evs bench --data ~/cityscapes --split val --backend icnet:icnet.caffemodel --out cs

Runs the per-frame baseline (PERFRAME) and every requested operating point over the same frames
in one process (``evs_ros.pipeline.evaluation``) and writes ``--json`` (default
``OUT/bench.json``), ``OUT/bench.md`` and PNG plots in ``OUT``. The JSON holds ``hardware``,
``resolution``, ``operating_points`` (name, D, S, W, R, adaptive, hz, speedup, miou,
per_class_iou, latency_ms_p50/p99, ...), ``table1``, ``figure6`` and ``figure7`` (paper Tables
1-2, Figures 6-7). Ratios (speedup) are measured in one run; absolute Hz only mean something
next to the ``hardware`` block.
"""

import argparse
import os
import platform
import sys
import time
from typing import Dict, List

from evs_ros.tools import plots
from evs_ros.tools.evaluate import (
    accuracy_markdown, add_model_arguments, add_source_arguments, parse_resolution,
    run_evaluation, write_json,
)

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
    add_source_arguments(parser)
    add_model_arguments(parser)


def settings(args: argparse.Namespace) -> Dict[str, object]:
    """Resolution (w, h) or None, default synthetic snippet count, Figure 6 range."""
    preset = QUICK if args.quick else FULL
    resolution = args.resolution
    if resolution is None and (args.quick or not args.data):
        resolution = preset['resolution']
    figure = args.figure_propagations
    return {'size_wh': parse_resolution(resolution), 'snippets': preset['snippets'],
            'figure_propagations': preset['figure_propagations'] if figure is None else figure}


def hardware_info(model=None) -> Dict[str, object]:
    """CPU model, cores, library versions, the network's device and thread counts."""
    import cv2
    import numpy
    info = {'cpu': _cpu_model(), 'cores': os.cpu_count(), 'machine': platform.machine(),
            'python': platform.python_version(), 'numpy': numpy.__version__,
            'opencv': cv2.__version__, 'opencv_threads': cv2.getNumThreads(), 'torch': None,
            'torch_threads': None, 'device': str(getattr(model, 'device', 'cpu')), 'gpu': None}
    torch = sys.modules.get('torch')
    if torch is None:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is optional for python: backends
            torch = None
    if torch is not None:
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as stream:
            for line in stream:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def speed_markdown(report) -> List[str]:
    """Markdown lines: the speed / accuracy table of all operating points."""
    lines = ['## Speed and accuracy (one run, same frames)', '',
             '| op | D | S | W | R | Hz | speedup | mIoU % | latency p50 ms | latency p99 ms '
             '| keyframes / frames |', '|' + '---|' * 11]
    for e in report['operating_points']:
        miou = '-' if e['miou'] is None else f"{100 * e['miou']:.1f}"
        interval = f"A<={e['max_keyframe_interval']}" if e['adaptive'] else str(e['S'])
        lines.append(
            f"| {e['name']} | {e['D']} | {interval} | {'on' if e['W'] else 'off'} | "
            f"{'on' if e['R'] else 'off'} | {e['hz']} | {e['speedup']} | {miou} | "
            f"{e['latency_ms_p50']} | {e['latency_ms_p99']} | {e['keyframes']} / {e['frames']} |")
    return lines + ['']


def _number(value, digits: int = 3) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def figures_markdown(report) -> List[str]:
    """Markdown lines for Figures 6 and 7 (tables; the PNGs are linked by the caller)."""
    fig6, fig7 = report.get('figure6'), report.get('figure7')
    if not fig6:
        return ['Figures 6-7: skipped (--figure-propagations 0).', '']
    lines = ['## Figure 6: mIoU (%) after N pure propagations (W on, R off)', '',
             '| method | ' + ' | '.join(f'N={n}' for n in fig6['propagations']) + ' |',
             '|' + '---|' * (1 + len(fig6['propagations']))]
    for method, values in fig6['methods'].items():
        cells = ['-' if v is None else f'{100 * v:.1f}' for v in values['miou']]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Figure 7: IAM inconsistent pixels after k propagations (DIS)', '',
              '| k | frames | mean % | median % | frames below 5 % (%) |', '|---|---|---|---|---|']
    for k, entry in fig7['by_propagations'].items():
        cells = [_number(entry[key]) for key in ('mean_percent', 'median_percent')]
        share = _number(None if entry['below_5_percent'] is None
                        else 100 * entry['below_5_percent'])
        lines.append(f"| {k} | {entry['n']} | {cells[0]} | {cells[1]} | {share} |")
    return lines + ['']


def write_markdown(report, path: str, images: List[str]) -> None:
    """The human-readable report: hardware, speed table, accuracy, Table 1, figures."""
    hw = report['hardware']
    lines = ['# evs bench', '',
             f"Hardware: {hw['cpu']}, {hw['cores']} cores, device {hw['device']}"
             f"{', GPU ' + hw['gpu'] if hw['gpu'] else ''}; torch {hw['torch']} "
             f"({hw['torch_threads']} threads), OpenCV {hw['opencv']} "
             f"({hw['opencv_threads']} threads).",
             f"Resolution {report['resolution']}, {len(report['snippets'])} snippets "
             f"({report['data']['kind']}), backend `{report['backend']}`, refiner "
             f"`{report['refiner'] or 'none'}`, {report['elapsed_s']} s in all.", '',
             *speed_markdown(report), *accuracy_markdown(report), *figures_markdown(report)]
    lines += [f'![{name}]({name})' for name in images]
    with open(path, 'w', encoding='utf-8') as stream:
        stream.write('\n'.join(lines) + '\n')


def run(args: argparse.Namespace) -> int:
    """Benchmark, then write JSON, markdown and plots; prints the speed table."""
    start = time.perf_counter()
    try:
        chosen = settings(args)
        report, model = run_evaluation(args, chosen['size_wh'], chosen['figure_propagations'],
                                       default_synth=chosen['snippets'])
    except (FileNotFoundError, ValueError) as error:
        print(f'evs bench: error: {error}', file=sys.stderr)
        return 2
    hardware = {**hardware_info(model), 'allocator_tuned': bool(args.tune_allocator)}
    report = {'hardware': hardware, 'quick': bool(args.quick), **report,
              'elapsed_s': round(time.perf_counter() - start, 1)}
    json_path = args.json or os.path.join(args.out, 'bench.json')
    write_json(json_path, report)
    images = plots.write_all(report, args.out)
    write_markdown(report, os.path.join(args.out, 'bench.md'), images)
    print('\n'.join(speed_markdown(report)))
    print(f"wrote {json_path}, {os.path.join(args.out, 'bench.md')} and {len(images)} plots")
    return 0
