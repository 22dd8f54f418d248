"""What one `evs fleet` worker spends per frame besides the network, at camera size.

    python scripts/bench_fleet_io.py BAG [--json FILE]

On one bag (e.g. from scripts/make_fleet_bags.py --size 2048x1024), in this process, one core:
ms per frame of the bag pass with a labeller that returns zeros (read, copy, write the three
raw output images: the I/O floor of a worker), of the pass with EVS14 and EVS05 (default
network), and of the input and output checksums the manifest records.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evs_ros.bags.labelling import process_bag
from evs_ros.bags.manifest import checksum
from evs_ros.bags.network import apply_threads, load_labeller
from evs_ros.config import EvsConfig, operating_point


def measure(bag: Path, out: Path, labeller, colorize=None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = process_bag(bag, out, '/camera/image', labeller, colorize)
    pass_s = time.perf_counter() - start
    start = time.perf_counter()
    checksum(bag)
    checksum(out)
    checksum_s = time.perf_counter() - start
    return {'frames': summary.frames, 'ms_per_frame': round(1000 * pass_s / summary.frames, 1),
            'checksums_ms_per_frame': round(1000 * checksum_s / summary.frames, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bag', type=Path)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as temp:
        out = Path(temp) / 'out'
        results['bag I/O only'] = measure(
            args.bag, out, lambda image, stamp: (np.zeros(image.shape[:2], np.uint8), None))
        for name in ('EVS14', 'EVS05'):
            config = EvsConfig(operating_point=operating_point(name))
            labeller = load_labeller(config)
            apply_threads(config)
            results[name] = measure(args.bag, out, labeller, labeller.colorize)
    for name, values in results.items():
        print(f'{name}: {values}')
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
