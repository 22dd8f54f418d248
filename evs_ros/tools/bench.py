"""``evs bench``: benchmarks are commands that write JSON/markdown/plots, never timed tests.

Commands::

    evs bench [--quick] --out DIR ...     operating points vs per-frame (paper Table 1-2, Fig. 6-7)
    evs bench flow --json FILE ...        DIS alone vs a whole propagated frame
    evs bench flow-scale --out DIR ...    accuracy and cost of flow on reduced frames (Fig. 6)
    evs bench cameras --out DIR ...       how many cameras at 17 Hz one node serves
    evs bench models --out FILE ...       networks and their Refiner per engine, ms per frame
    evs bench latency --json FILE ...     end-to-end latency of the ROS node over DDS
    evs bench chunks --out DIR ...        how evs fleet's chunk borders change the labels
"""

import argparse
import importlib

SUBCOMMANDS = {
    'flow': 'bench_flow',
    'flow-scale': 'bench_flow_scale',
    'cameras': 'bench_cameras',
    'models': 'bench_models',
    'latency': 'bench_latency',
    'chunks': 'bench_chunks',
}
DEFAULT = 'bench_ops'


def main(argv) -> int:
    argv = list(argv)
    name = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    module_name = SUBCOMMANDS[name] if name else DEFAULT
    module = importlib.import_module(f'evs_ros.tools.{module_name}')
    if not hasattr(module, 'add_arguments'):
        return int(module.main(argv[1:] if name else argv) or 0)
    parser = argparse.ArgumentParser(
        prog=f'evs bench{" " + name if name else ""}',
        description=(module.__doc__ or '').strip().splitlines()[0] if module.__doc__ else None)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:] if name else argv)
    return int(module.run(args) or 0)
