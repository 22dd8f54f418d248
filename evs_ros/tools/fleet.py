r"""``evs fleet IN OUT``: label every bag of a recording archive on a Ray cluster.

A thin command over :mod:`evs_ros.bags.fleet`: IN is a directory of bags or a file listing
them; OUT gets one output bag per input under the same relative path (what ``evs bag`` writes),
``manifest.json`` and ``fleet_report.{md,json}``. A rerun labels only what is new, failed or
stale. Exit code 0 when every bag is labelled, 1 when some failed (the others are done), 2 when
the run cannot start, 130 when interrupted.

    evs fleet /data/drives /data/labelled --address auto --operating-point EVS07
    evs fleet drives.txt out --workers 2 --backend weights:segformer-b0-cityscapes \
        --weights-dir /data/evs_weights
"""

import sys
from pathlib import Path

from evs_ros.data import rosbag_io
from evs_ros.tools import common


def add_arguments(parser) -> None:
    """Declare the ``evs fleet`` options."""
    parser.add_argument('input', type=Path, help='directory of ROS 2 bags, or a text file '
                        'listing bag directories (one per line)')
    parser.add_argument('output', type=Path, help='output directory (created; reruns resume)')
    parser.add_argument('--image-topic', default='/camera/image',
                        help='sensor_msgs/Image or CompressedImage topic (default: %(default)s)')
    parser.add_argument('--storage', choices=sorted(rosbag_io.STORAGE_PLUGINS), default=None,
                        help='output storage (default: same as each input)')
    ray_group = parser.add_argument_group('Ray')
    ray_group.add_argument('--address', metavar='auto|HOST:PORT',
                           help='Ray cluster to run on (auto: the one `ray start` made on this '
                           'machine); default: start a local Ray instance')
    ray_group.add_argument('--workers', type=int, metavar='N',
                           help='CPUs of the local instance (default: all)')
    ray_group.add_argument('--cpus-per-task', type=float, default=1.0, metavar='N',
                           help='CPUs each task reserves (default: %(default)s)')
    ray_group.add_argument('--gpus-per-task', type=float, default=0.0, metavar='N',
                           help='GPUs each labelling task reserves, e.g. 0.25 to share one '
                           '(default: %(default)s)')
    ray_group.add_argument('--max-retries', type=int, default=3, metavar='N',
                           help='Ray retries of a task whose worker died (default: %(default)s)')
    ray_group.add_argument('--no-dashboard', dest='dashboard', action='store_false',
                           help='do not start the Ray dashboard with a local instance')
    parser.add_argument('--chunk-s', type=float, default=60.0, metavar='S',
                        help='split bags longer than S seconds into chunks of about S seconds '
                        'that start on a keyframe (0 = never; default: %(default)s)')
    parser.add_argument('--weights-dir', metavar='DIR',
                        help='folder shipped to every worker as its weights cache (layout of '
                        'XDG_CACHE_HOME: evs_ros/NAME, huggingface/hub; or files named '
                        'relative to it in --backend/--refiner)')
    parser.add_argument('--verify', action='store_true',
                        help='decide what is current by checksums (reads every bag) instead '
                        'of file sizes and times')
    common.add_config_arguments(parser)


def run(args) -> int:
    """Run the fleet; exit code 0 (all labelled), 1 (some failed), 2 (cannot start)."""
    from evs_ros.bags.fleet import FleetError, FleetOptions, run_fleet
    try:
        config = common.build_config(args)
        options = FleetOptions(
            image_topic=args.image_topic, storage=args.storage, address=args.address,
            workers=args.workers, cpus_per_task=args.cpus_per_task,
            gpus_per_task=args.gpus_per_task, chunk_s=args.chunk_s,
            weights_dir=args.weights_dir, verify=args.verify, max_retries=args.max_retries,
            dashboard=args.dashboard)
        report = run_fleet(args.input, args.output, config, options, _log)
    except (FleetError,) + common.USER_ERRORS as error:
        return common.fail('fleet', error)
    except KeyboardInterrupt:
        print('evs fleet: interrupted; run the same command again to resume', file=sys.stderr)
        return 130
    return 1 if report['bags']['failed'] else 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
