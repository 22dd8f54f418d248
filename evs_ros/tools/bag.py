"""``evs bag IN OUT``: run EVS over a recorded ROS 2 bag and write a new bag (design.md §1, §5).

A thin command over :mod:`evs_ros.bags.labelling` (``evs fleet`` labels each bag with the same
code): the output holds every input message plus ``<ns>/labels``, ``<ns>/labels_color`` and
``<ns>/inconsistency_mask`` next to the image topic, and ``evs_summary.json``. It is written under
a temporary name and renamed when complete.
"""

import sys
from pathlib import Path

from evs_ros.bags.labelling import process_bag, write_atomically
from evs_ros.bags.manifest import config_hash, label_settings
from evs_ros.bags.network import apply_threads, fix_backend, load_labeller
from evs_ros.data import rosbag_io
from evs_ros.data.rosbag_io import BagError
from evs_ros.tools import common


def add_arguments(parser) -> None:
    """Declare the ``evs bag`` options."""
    parser.add_argument('input', type=Path, help='input ROS 2 bag directory')
    parser.add_argument('output', type=Path, help='output bag directory (must not exist)')
    parser.add_argument('--image-topic', default='/camera/image',
                        help='sensor_msgs/Image or CompressedImage topic (default: %(default)s)')
    common.add_config_arguments(parser, threads=False)
    parser.add_argument('--storage', choices=sorted(rosbag_io.STORAGE_PLUGINS), default=None,
                        help='output storage (default: same as the input)')


def run(args) -> int:
    """Process the bag; print a one-line summary."""
    try:
        config = fix_backend(common.build_config(args))
        if args.output.exists():
            raise BagError(f'output bag {args.output} already exists; remove it or choose '
                           'another path')
        labeller = load_labeller(config)
        apply_threads(config)
        settings = label_settings(config, args.image_topic, args.storage, 0.0)
        summary = write_atomically(
            args.output,
            lambda temp: process_bag(args.input, temp, args.image_topic, labeller,
                                     labeller.colorize, args.storage, _progress),
            {'config_hash': config_hash(settings), 'settings': settings})
    except (BagError,) + common.USER_ERRORS as error:
        return common.fail('bag', error)
    rate_hz = summary.frames / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    print(f'\nevs bag: {summary.frames} frames ({summary.skipped_frames} skipped, '
          f'{summary.keyframes} keyframes) at {rate_hz:.1f} Hz with '
          f'{config.operating_point.name}; {summary.messages_copied} messages copied; wrote '
          f'{", ".join(summary.output_topics)} to {args.output}')
    return 0


def _progress(frames: int) -> None:
    if frames % 50 == 0:
        print(f'\revs bag: {frames} frames', end='', file=sys.stderr, flush=True)
