"""``evs bench models``: CPU/GPU cost of the networks per frame (paper Fig. 5).

ICNet (full and reduced width) and the Refiner. Random-init networks (weights do not change the
cost). Reports the median and p90 latency in ms of ``predict`` / ``refine`` (numpy in and out, as
the pipeline calls them) for each thread count. Usage:
``evs bench models --out docs/bench/models.json``.
"""

import argparse
import json
import time
from typing import Dict, List

import numpy as np
import torch

from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common

from evs_ros.models.icnet import ICNet, IcnetModel, output_size
from evs_ros.models.refiner import RefinerNet, TorchRefiner


def _time_ms(function, repeats: int, warmup: int, cuda: bool) -> List[float]:
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


def bench_width(width_mult: float, size_wh, device: str, repeats: int, warmup: int) -> Dict:
    """Latency of ICNet.predict and Refiner.refine at one width and input size (W, H)."""
    width, height = size_wh
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    icnet = IcnetModel(ICNet(19, width_mult, aux_heads=False), device)
    refiner = TorchRefiner(RefinerNet(19, icnet.feature_channels, width_mult, residual=True),
                           device)  # the shipped architecture
    probs = np.full((19, output_size(height, 4), output_size(width, 4)), 1 / 19, np.float32)
    features = np.zeros((icnet.feature_channels, output_size(height, 16),
                         output_size(width, 16)), np.float32)
    cuda = icnet.device.type == 'cuda'
    icnet_ms = _time_ms(lambda: icnet.predict(image), repeats, warmup, cuda)
    refiner_ms = _time_ms(lambda: refiner.refine(image, probs, features), repeats, warmup, cuda)
    row = {'width_mult': width_mult, 'input_wh': [width, height]}
    for name, times in (('icnet', icnet_ms), ('refiner', refiner_ms)):
        summary = percentiles(times, (50, 90), digits=1)
        row[f'{name}_ms_median'], row[f'{name}_ms_p90'] = summary['p50'], summary['p90']
    row['refiner_speedup_vs_icnet'] = round(row['icnet_ms_median'] / row['refiner_ms_median'], 2)
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench models``."""
    parser.add_argument('--out', default='bench_models.json')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', default='1,2', help='comma-separated torch thread counts')
    parser.add_argument('--widths', default='1.0,0.5,0.25')
    parser.add_argument('--sizes', default='1024x512,2048x1024', help='WxH list')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)


def run(args: argparse.Namespace) -> int:
    """Time every thread count x size x width; write JSON."""
    try:
        sizes = common.parse_sizes(args.sizes)
    except common.USER_ERRORS as error:
        return common.fail('bench models', error)
    rows = []
    for threads in (int(t) for t in args.threads.split(',')):
        torch.set_num_threads(threads)
        for size_wh in sizes:
            for width_mult in (float(w) for w in args.widths.split(',')):
                row = bench_width(width_mult, size_wh, args.device, args.repeats, args.warmup)
                row['threads'] = threads
                print(json.dumps(row), flush=True)
                rows.append(row)
    report = {'hardware': {**common.hardware_info(), 'device': args.device}, 'rows': rows}
    common.write_json(args.out, report)
    return 0
