"""``evs bench models``: CPU/GPU cost per frame of the keyframe networks and of their Refiner.

Networks (``--networks``): ICNet at each ``--widths`` (1.0 = the official size, 0.5 = shipped)
and SegFormer-B0..B5 with the published shapes (``evs_ros.models.hf_random``). All have random
weights (speed does not depend on them) and 19 classes. Each network's Refiner is the shipped
architecture (residual head) taking that network's feature channels: ICNet's ``conv3_1`` at 1/16,
SegFormer's first encoder stage at 1/4; its width is ICNet's, or ``--refiner-width`` for the
other networks (the default of ``evs train refiner``). Reports the median and p90 latency in ms of
``predict`` / ``refine`` (numpy in and out, as the pipeline calls them) for each thread count and
input size, as JSON (``--out``) and a markdown table (``--markdown``). Usage::

    evs bench models --out docs/bench/models.json --networks icnet,segformer-b0,segformer-b2
"""

import argparse
import json
import os
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common

NETWORKS = 'icnet,segformer-b0,segformer-b2'
NUM_CLASSES = 19
COLUMNS = ('network', 'width', 'input', 'threads', 'feature channels', 'network ms p50',
           'network ms p90', 'Refiner ms p50', 'Refiner ms p90', 'Refiner speedup')


def _time_ms(function: Callable[[], object], repeats: int, warmup: int,
             cuda: bool) -> List[float]:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def build_network(name: str, width_mult: float, device: str):
    """Return (SegmentationModel, parameter count) of ``name``, random weights, 19 classes.

    ``name`` is 'icnet' at ``width_mult`` or 'segformer-bN'.
    """
    if name == 'icnet':
        from evs_ros.models.icnet import ICNet, IcnetModel
        network = ICNet(NUM_CLASSES, width_mult, aux_heads=False)
        return IcnetModel(network, device), _parameters(network)
    from evs_ros.models.hf import HfSegmentationModel, Preprocessing
    from evs_ros.models.hf_random import random_segformer
    network = random_segformer(name)
    return HfSegmentationModel(network, 'segformer', Preprocessing(), device), \
        _parameters(network)


def _parameters(network: torch.nn.Module) -> int:
    return int(sum(parameter.numel() for parameter in network.parameters()))


def bench_network(name: str, width_mult: float, refiner_width: float, size_wh: Tuple[int, int],
                  device: str, repeats: int, warmup: int, batch: int = 1) -> Dict[str, object]:
    """Latency of ``predict`` of one network and of ``refine`` of its Refiner at (W, H).

    With ``batch`` > 1 also ms per frame of ``batch`` frames in one ``predict_batch`` call
    (networks that have it: ICNet; runtime.keyframe_batch).
    """
    from evs_ros.models.refiner import RefinerNet, TorchRefiner
    width, height = size_wh
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    model, parameters = build_network(name, width_mult, device)
    channels = int(model.feature_channels or 0)
    refiner = TorchRefiner(RefinerNet(NUM_CLASSES, channels, refiner_width, residual=True),
                           device)
    prediction = model.predict(image)  # the Refiner gets inputs of the real shapes
    cuda = model.device.type == 'cuda'
    network_ms = _time_ms(lambda: model.predict(image), repeats, warmup, cuda)
    refiner_ms = _time_ms(lambda: refiner.refine(image, prediction.probs, prediction.features),
                          repeats, warmup, cuda)
    row = {'network': name, 'width_mult': width_mult if name == 'icnet' else None,
           'parameters': parameters, 'input_wh': [width, height], 'feature_channels': channels,
           'refiner_width_mult': refiner_width}
    for key, times in (('network', network_ms), ('refiner', refiner_ms)):
        summary = percentiles(times, (50, 90), digits=1)
        row[f'{key}_ms_median'], row[f'{key}_ms_p90'] = summary['p50'], summary['p90']
    row['refiner_speedup_vs_network'] = round(row['network_ms_median'] /
                                              max(row['refiner_ms_median'], 1e-6), 2)
    if batch > 1 and hasattr(model, 'predict_batch'):
        batch_ms = _time_ms(lambda: model.predict_batch([image] * batch), repeats, warmup, cuda)
        row['batch'] = batch
        row['network_batch_ms_per_frame'] = round(float(np.median(batch_ms)) / batch, 1)
    return row


def parse_networks(text: str) -> List[str]:
    """'icnet,segformer-b0' -> names; ValueError naming the choices for an unknown one."""
    from evs_ros.models.hf_random import segformer_variant
    names = []
    for item in (part.strip().lower() for part in text.split(',') if part.strip()):
        names.append('icnet' if item == 'icnet' else f'segformer-{segformer_variant(item)}')
    if not names:
        raise ValueError(f'--networks {text!r} names no network, e.g. {NETWORKS}')
    return names


def parse_threads(text: str) -> List[int]:
    """'1,2' -> [1, 2]; ValueError naming the format otherwise."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise ValueError(f'--threads {text!r} is not a comma list of thread counts, e.g. 1,2')
    return [int(item) for item in items]


def markdown_table(rows: List[Dict[str, object]]) -> List[str]:
    """Return one markdown row per measurement (ms medians and p90s).

    With a batch column when any row was batched.
    """
    batched = next((row['batch'] for row in rows if 'batch' in row), None)
    columns = COLUMNS + ((f'network ms per frame, {batched} in one call',) if batched else ())
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        width = '' if row['width_mult'] is None else row['width_mult']
        cells = (row['network'], width, 'x'.join(str(v) for v in row['input_wh']),
                 row['threads'], row['feature_channels'], row['network_ms_median'],
                 row['network_ms_p90'], row['refiner_ms_median'], row['refiner_ms_p90'],
                 f"{row['refiner_speedup_vs_network']}x")
        if batched:
            cells += (row.get('network_batch_ms_per_frame', '-'),)
        lines.append('| ' + ' | '.join(str(cell) for cell in cells) + ' |')
    return lines


def write_markdown(report: Dict[str, object], path: str) -> None:
    """Return the table with its hardware line."""
    hardware = report['hardware']
    lines = ['# evs bench models', '',
             f"Hardware: {common.hardware_line(hardware)}, device {hardware['device']}; torch "
             f"{hardware['torch']}. Random weights, {NUM_CLASSES} classes; median and p90 of "
             f"{report['repeats']} runs after {report['warmup']} warm-up.", '',
             *markdown_table(report['rows'])]
    common.write_text(path, '\n'.join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench models``."""
    parser.add_argument('--out', default='bench_models.json', help='JSON results')
    parser.add_argument('--markdown', metavar='FILE',
                        help='markdown table (default: --out with .md)')
    parser.add_argument('--networks', default=NETWORKS,
                        help='comma list of icnet, segformer-b0 .. segformer-b5 '
                             '(default: %(default)s)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', default='1,2', help='comma-separated torch thread counts')
    parser.add_argument('--widths', default='1.0,0.5,0.25', help='ICNet width multipliers')
    parser.add_argument('--refiner-width', type=float, default=0.5,
                        help='width of the Refiner of networks other than ICNet')
    parser.add_argument('--sizes', default='1024x512,2048x1024', help='WxH list')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--batch', type=int, default=1, metavar='N',
                        help='also time N frames in one predict_batch call, ms per frame '
                             '(networks that have it: ICNet; runtime.keyframe_batch)')


def _cases(args: argparse.Namespace):
    """(network, width) pairs in report order: ICNet per width, then the others."""
    widths = [float(width) for width in args.widths.split(',') if width.strip()]
    for name in parse_networks(args.networks):
        for width in (widths if name == 'icnet' else [None]):
            yield name, width


def run(args: argparse.Namespace) -> int:
    """Time every thread count x size x network; write JSON and markdown."""
    try:
        sizes = common.parse_sizes(args.sizes)
        cases = list(_cases(args))
        threads = parse_threads(args.threads)
        if args.batch < 1:
            raise ValueError(f'--batch {args.batch}: must be at least 1 (frames in one call)')
    except common.USER_ERRORS as error:
        return common.fail('bench models', error)
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        for size_wh in sizes:
            for name, width in cases:
                refiner_width = width if name == 'icnet' else args.refiner_width
                row = bench_network(name, width or 1.0, refiner_width, size_wh, args.device,
                                    args.repeats, args.warmup, args.batch)
                row['threads'] = count
                print(json.dumps(row), flush=True)
                rows.append(row)
    report = {'hardware': {**common.hardware_info(), 'device': args.device},
              'repeats': args.repeats, 'warmup': args.warmup, 'rows': rows}
    common.write_json(args.out, report)
    markdown = args.markdown or f'{os.path.splitext(args.out)[0]}.md'
    write_markdown(report, markdown)
    print('\n'.join(markdown_table(rows)))
    print(f'wrote {args.out} and {markdown}')
    return 0
