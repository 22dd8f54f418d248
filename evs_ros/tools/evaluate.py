"""``evs eval``: mIoU per operating point on annotated snippets (paper §4.1, Tables 1-2).

Examples::

    evs eval --data data/synth --split val                      # Cityscapes layout (real or synth)
    evs eval --data ~/cityscapes --split val --backend icnet:icnet_cityscapes.caffemodel
    evs eval --synth-snippets 5 --resolution 1024x512 --operating-points EVS03 EVS07

Every operating point starts on a keyframe ``S - 1`` frames before the annotated frame (index
19, the paper's 20th frame), its worst case; see ``evs_ros.pipeline.evaluation``. Writes JSON
(``--json``) and a markdown table next to it. ``evs bench`` runs the same evaluation and adds
speed, Figures 6-7 and plots. The option helpers here are shared with ``evs bench``.
"""

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

from evs_ros.config import (
    OPERATING_POINTS, EvsConfig, OperatingPoint, config_from_flat, load_yaml, operating_point,
)

SYNTH_TEST_SPLIT = 'test'


def parse_resolution(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """'2048x1024' -> (2048, 1024); None/'' -> None; ValueError naming the format otherwise."""
    if not text:
        return None
    width, _, height = text.strip().lower().partition('x')
    if not (width.isdigit() and height.isdigit()) or int(width) < 16 or int(height) < 16:
        raise ValueError(f'resolution {text!r} is not WIDTHxHEIGHT (>= 16x16), e.g. 2048x1024')
    return int(width), int(height)


def parse_operating_points(names: Optional[Sequence[str]]) -> List[OperatingPoint]:
    """Preset names (``EVS05``, ``evs5``, ``ADAPTIVE``, ``PERFRAME``; 'all' = every preset).

    ``NAME@T`` is the preset with ``adaptive_threshold`` T (e.g. ``ADAPTIVE@0.03``), so one run
    can sweep the adaptive policy's threshold.
    """
    if not names or [n.lower() for n in names] == ['all']:
        return list(OPERATING_POINTS.values())
    items = [item.strip() for name in names for item in name.split(',') if item.strip()]
    return [_operating_point_with_threshold(item) for item in items]


def _operating_point_with_threshold(text: str) -> OperatingPoint:
    name, _, threshold = text.partition('@')
    op = operating_point(name)
    if not threshold:
        return op
    if not op.adaptive:
        raise ValueError(f'{text!r}: @THRESHOLD only applies to adaptive operating points '
                         '(ADAPTIVE)')
    try:
        value = float(threshold)
    except ValueError:
        raise ValueError(f'{text!r}: threshold {threshold!r} is not a number '
                         '(e.g. ADAPTIVE@0.03)') from None
    return replace(op, name=f'{op.name}@{threshold}', adaptive_threshold=value)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--data/--split (Cityscapes layout) or --synth-snippets (rendered on the fly)."""
    group = parser.add_argument_group('snippets')
    group.add_argument('--data', metavar='ROOT',
                       help='Cityscapes-layout dataset root (leftImg8bit_sequence + gtFine)')
    group.add_argument('--split', default='val', help='split of --data (default: %(default)s)')
    group.add_argument('--synth-snippets', type=int, metavar='N',
                       help="render N held-out synthetic snippets (split 'test') on the fly")
    group.add_argument('--synth-seed', type=int, default=0,
                       help='base seed of the synthetic snippets (default: %(default)s)')
    group.add_argument('--max-snippets', type=int, metavar='N', help='use at most N snippets')
    group.add_argument('--resolution', metavar='WxH',
                       help='resize frames (and labels) to WIDTHxHEIGHT')


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Operating points, networks, device, threads and an optional params file."""
    group = parser.add_argument_group('pipeline')
    group.add_argument('--operating-points', nargs='+', metavar='NAME',
                       help='presets to evaluate, e.g. EVS03 EVS07 ADAPTIVE ADAPTIVE@0.03 '
                            '(NAME@T: adaptive threshold T; default: all; the per-frame '
                            'baseline PERFRAME is always included)')
    add_network_arguments(group)


def add_network_arguments(group) -> None:
    """Network, Refiner, device, params file and thread options shared by the offline tools
    (``evs eval``, ``evs bench``, ``evs run``); read by :func:`build_config` and
    :func:`set_threads`."""
    group.add_argument('--backend', default='icnet:default',
                       help='network SPEC (default: %(default)s, the shipped weights)')
    group.add_argument('--refiner', default='default',
                       help="Refiner checkpoint, 'default' (shipped) or '' / none (R acts as off)")
    group.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    group.add_argument('--config', metavar='YAML', help='ROS-style params file (flow, iam)')
    group.add_argument('--no-tune-allocator', dest='tune_allocator', action='store_false',
                       help='keep glibc malloc defaults (see evs_ros.flow.realtime)')
    group.add_argument('--flow-threads', type=int, metavar='N',
                       help='cv2.setNumThreads (default: runtime.flow_threads = 1, the paper)')
    group.add_argument('--inference-threads', type=int, metavar='N',
                       help='torch.set_num_threads (default: runtime.inference_threads = 1; '
                            'more threads on a loaded machine make timings erratic)')


def build_config(args: argparse.Namespace) -> EvsConfig:
    """Flow / IAM settings from ``--config`` plus model settings from the command line."""
    base = load_yaml(args.config) if getattr(args, 'config', None) else EvsConfig()
    refiner = '' if args.refiner.lower() in ('', 'none') else args.refiner
    return config_from_flat({'model.backend': args.backend, 'model.refiner': refiner,
                             'model.device': args.device}, base)


def load_models(config: EvsConfig, need_refiner: bool):
    """(SegmentationModel, RefinerModel or None); the Refiner only when an op has R on."""
    from evs_ros.models.backends import load_backend, load_refiner
    model = load_backend(config.model.backend, config.model.device, config.model.fp16)
    refiner = None
    if need_refiner and config.model.refiner:
        try:
            refiner = load_refiner(config.model.refiner, config.model.device, config.model.fp16)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}; or pass --refiner '' to run without the Refiner "
                                    '(R then acts as off)') from error
    return model, refiner


def set_threads(args: argparse.Namespace, config: EvsConfig) -> None:
    """Apply --flow-threads / --inference-threads, else ``config.runtime``'s counts (torch
    only when a backend already loaded it), and the real-time allocator settings."""
    import cv2

    from evs_ros.flow.realtime import tune_allocator
    if getattr(args, 'tune_allocator', True):
        tune_allocator()
    flow_threads = args.flow_threads or config.runtime.flow_threads
    inference_threads = args.inference_threads or config.runtime.inference_threads
    cv2.setNumThreads(max(1, flow_threads))
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(max(1, inference_threads))


def snippet_source(args: argparse.Namespace, size_wh, default_synth: int = 0):
    """Return (snippet iterator, expected count or None, JSON description of the data)."""
    from evs_ros.pipeline import evaluation
    from evs_ros.tools.synth import snippet_seed
    if args.data:
        from evs_ros.data.cityscapes import list_snippets
        count = sum(s.annotated_index in s.labels for s in list_snippets(args.data, args.split))
        if args.max_snippets is not None:
            count = min(count, args.max_snippets)
        snippets = evaluation.cityscapes_snippets(args.data, args.split, size_wh,
                                                  args.max_snippets)
        described = {'kind': 'cityscapes_layout', 'root': os.path.abspath(args.data),
                     'split': args.split}
        return snippets, count, described
    count = args.synth_snippets or default_synth
    if args.max_snippets is not None:
        count = min(count, args.max_snippets)
    if count < 1:
        raise ValueError('give --data ROOT or --synth-snippets N')
    seeds = [snippet_seed(SYNTH_TEST_SPLIT, args.synth_seed, i) for i in range(count)]
    described = {'kind': 'synthetic', 'split': SYNTH_TEST_SPLIT, 'seeds': seeds}
    return evaluation.synthetic_snippets(seeds, size_wh), count, described


def run_evaluation(args, size_wh, figure_propagations: int, default_synth: int = 0):
    """Shared by ``evs eval`` and ``evs bench``: returns (report dict, model)."""
    from tqdm import tqdm

    from evs_ros.pipeline.evaluation import evaluate
    ops = parse_operating_points(args.operating_points)
    config = build_config(args)
    model, refiner = load_models(config, any(op.refine for op in ops))
    set_threads(args, config)
    snippets, count, described = snippet_source(args, size_wh, default_synth)
    with tqdm(total=count, desc='evaluate', unit='snippet') as bar:
        report = evaluate(snippets, model, refiner, ops, config, figure_propagations,
                          progress=lambda snippet: bar.update(1))
    report['data'] = described
    report['backend'] = config.model.backend
    report['refiner'] = config.model.refiner if refiner is not None else ''
    return report, model


def _iou_cell(value) -> str:
    return '-' if value is None else f'{100.0 * value:.1f}'


def accuracy_markdown(report) -> List[str]:
    """Markdown lines: mIoU per operating point, per-class IoU, and paper Table 1."""
    entries = report['operating_points']
    names = list(entries[0]['per_class_iou'])
    lines = ['## Accuracy (IoU in %, annotated frame at the worst case S-1 propagations)', '',
             '| op | D | S | W | R | mIoU | ' + ' | '.join(names) + ' |',
             '|' + '---|' * (6 + len(names))]
    for e in entries:
        cells = [_iou_cell(e['per_class_iou'][name]) for name in names]
        flags = [str(e['D']), 'A' if e['adaptive'] else str(e['S']),
                 'on' if e['W'] else 'off', 'on' if e['R'] else 'off']
        lines.append(f"| {e['name']} | " + ' | '.join(flags) + f" | {_iou_cell(e['miou'])} | "
                     + ' | '.join(cells) + ' |')
    lines += ['', *table1_markdown(report.get('table1'), names)]
    return lines


def table1_markdown(table, names) -> List[str]:
    """Paper Table 1 as markdown (rows: without, with refinement, recovery per case)."""
    if not table or not table['rows']:
        return ['Table 1: not computed (needs EVS02 + EVS03 and/or EVS06 + EVS07).', '']
    lines = ['## Table 1: refinement after S-1 propagations (IoU in %)', '',
             '| case | row | mIoU | ' + ' | '.join(names) + ' |', '|' + '---|' * (3 + len(names))]
    for row in table['rows']:
        for label, key in (('without R', 'without_refinement'), ('with R', 'with_refinement'),
                           ('recovery', 'recovery')):
            part = row[key]
            title = f"{label} ({part['operating_point']})" if 'operating_point' in part else label
            cells = [_iou_cell(part['per_class_iou'][name]) for name in names]
            lines.append(f"| {row['case']} | {title} | {_iou_cell(part['miou'])} | "
                         + ' | '.join(cells) + ' |')
    return lines + ['']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs eval``."""
    add_source_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument('--json', default='evs_eval.json', metavar='FILE',
                        help='write results here; markdown goes to FILE with .md '
                             '(default: %(default)s)')
    parser.add_argument('--figures', type=int, default=0, metavar='N',
                        help='also compute Figures 6-7 up to N propagations (default: off)')


def write_json(path: str, report) -> None:
    """Write ``report`` as indented JSON (NaN-free), creating the directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(report, stream, indent=2, allow_nan=False)
        stream.write('\n')


def run(args: argparse.Namespace) -> int:
    """Evaluate, write JSON + markdown, print the mIoU table."""
    try:
        report, _ = run_evaluation(args, parse_resolution(args.resolution), args.figures)
    except (FileNotFoundError, ValueError) as error:
        print(f'evs eval: error: {error}', file=sys.stderr)
        return 2
    for entry in report['operating_points']:  # accuracy only: speed is `evs bench`'s job
        for key in ('hz', 'speedup', 'latency_ms_p50', 'latency_ms_p99', 'stage_ms'):
            entry.pop(key, None)
    write_json(args.json, report)
    markdown = '\n'.join(['# evs eval', '', f"Snippets: {len(report['snippets'])} "
                          f"({report['data']['kind']}), backend `{report['backend']}`", '',
                          *accuracy_markdown(report)])
    with open(os.path.splitext(args.json)[0] + '.md', 'w', encoding='utf-8') as stream:
        stream.write(markdown + '\n')
    for entry in report['operating_points']:
        print(f"{entry['name']:>9}  mIoU {_iou_cell(entry['miou']):>5}")
    print(f'wrote {args.json}')
    return 0
