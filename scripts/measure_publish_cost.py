#!/usr/bin/env python3
"""What publishing costs the flow worker, per propagated frame (docs/benchmarks.md section 17).

The node's outputs are made on the stream's flow-worker thread, after the frame's optical flow:
colours, the overlay and the copies into sensor_msgs/Image messages. This runs the node's own
ROS side (``CameraSet``) in this process on the shipped ICNet, with a subscriber to every output
in another process (as rviz2 and a fusion node would be), feeds a real clip through the runtime
and times, for every frame that was not sent to the network, the stepper's work (``total_ms``:
flow, warp, IAM) and the publishing that followed on the same thread.

    source scripts/env.sh
    python scripts/measure_publish_cost.py --out docs/bench/publish_cost

Writes publish_cost_<topics>.json and .md. ``--topics labels`` subscribes to the labels only (a
fusion consumer); the two places the node can publish from (``inline`` on the flow worker, as
before, and ``thread``, the node's publishing thread) are measured in turn, ``--repeats`` times
each, interleaved, so that their ratio comes from one run on a shared machine.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

SUBSCRIBER = """
import sys, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from evs_ros.msg import FrameStatus
rclpy.init()
node = rclpy.create_node('publish_cost_subscriber')
qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
for topic in sys.argv[1].split(','):
    node.create_subscription(FrameStatus if topic == 'status' else Image, topic, lambda m: None,
                             qos)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='out/publish_cost')
    parser.add_argument('--sizes', default='1024x512,2048x1024')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--operating-point', default='EVS05')
    parser.add_argument('--topics', choices=('all', 'labels'), default='all')
    parser.add_argument('--publishers', default='inline,thread',
                        help='where the node publishes, measured in turn: inline (on the flow '
                        "worker) and/or thread (the node's publishing thread)")
    parser.add_argument('--repeats', type=int, default=3,
                        help='runs per size and publisher, interleaved (medians are reported)')
    parser.add_argument('--backend', default='icnet:default')
    parser.add_argument('--clip', default='data_cache/bikes.mp4',
                        help='a video (default: the clip scripts/setup.sh fetches); a panning '
                        'texture when missing')
    return parser.parse_args(argv)


def clip(path, size_wh, count):
    """Real frames (the video at ``path``, else a panning texture) at ``size_wh``."""
    from evs_ros.data.sample_clips import read_frames
    if os.path.exists(path):
        return list(read_frames(path, count, size_wh)), os.path.basename(path)
    import cv2
    from evs_ros.data.synth import panning_frames
    return [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in panning_frames(size_wh, count)], \
        'panning texture'


class Timed:
    """Wraps a callable of one result and records its duration in ms per call.

    With the result's keyframe flag and stepper time.
    """

    def __init__(self, function):
        self.function, self.rows = function, []

    def __call__(self, result):
        start = time.perf_counter()
        self.function(result)
        self.rows.append((bool(result.info.keyframe), result.info.total_ms,
                          (time.perf_counter() - start) * 1000.0))


def measure(args, size_wh, publisher, config, model, env):
    import rclpy
    from std_msgs.msg import Header

    from evs_ros.data.classes import visualizer_for_model
    from evs_ros.pipeline.runtime import EvsRuntime
    from evs_ros.ros import cameras as cameras_module
    from evs_ros.testing.player import dds_environment
    frames, source = clip(args.clip, size_wh, args.frames)
    context = rclpy.Context()
    with dds_environment(env):
        rclpy.init(args=[], context=context, domain_id=int(env['ROS_DOMAIN_ID']))
        node = rclpy.create_node('evs_publish_cost', context=context)
    runtime = EvsRuntime(config, model)
    cameras = cameras_module.CameraSet(node, config, runtime, visualizer_for_model(config, model),
                                       [''], publish_thread=publisher == 'thread')
    io = cameras.cameras['']
    publishing = io.publish = Timed(io.publish)  # the work, wherever it runs
    timed = io.on_output = Timed(io.on_output)  # what the flow worker spends on it
    topics = ['labels', 'status'] if args.topics == 'labels' else \
        list(cameras_module.OUTPUT_TOPICS)
    subscriber = subprocess.Popen([sys.executable, '-c', SUBSCRIBER, ','.join(topics)], env=env)
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05)
                                               for _ in iter(spinning.is_set, True)], daemon=True)
    try:
        cameras.start()
        spinner.start()
        deadline = time.monotonic() + 60
        while not all(io.publishers[t].get_subscription_count() for t in topics):
            assert time.monotonic() < deadline, 'the subscriber did not come up'
            time.sleep(0.1)
        start_s = time.perf_counter()
        for index, frame in enumerate(frames):
            header = Header(frame_id='camera')
            header.stamp.sec = 1 + index
            io.stream.submit(frame, (1 + index) * 10**9, (header, time.monotonic(), frame),
                             wait=True)
        io.stream.drain(120)
        wall_s = time.perf_counter() - start_s
    finally:
        spinning.set()
        spinner.join(5)
        executor.shutdown()
        cameras.close()
        runtime.close()
        subscriber.kill()  # a measurement helper: no clean shutdown needed
        subscriber.wait()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    propagated = [(total, publish) for keyframe, total, publish in timed.rows[5:]
                  if not keyframe]
    work_ms = [ms for keyframe, _, ms in publishing.rows[5:] if not keyframe]
    totals = np.array([t for t, _ in propagated])
    publishes = np.array([p for _, p in propagated])
    return {'size': f'{size_wh[0]}x{size_wh[1]}', 'source': source, 'topics': topics,
            'publisher': publisher, 'operating_point': config.operating_point.name,
            'propagated_frames': len(propagated),
            'stepper_ms_p50': float(np.median(totals)),
            'publish_on_flow_worker_ms_p50': float(np.median(publishes)),
            'publish_work_ms_p50': float(np.median(work_ms)),
            'publish_share_of_frame': float(np.median(publishes / (totals + publishes))),
            'frames_per_s': len(frames) / wall_s}


def main(argv=None) -> int:
    from dataclasses import replace

    from evs_ros.config import EvsConfig, operating_point
    from evs_ros.models.loading import load_models
    from evs_ros.testing.session import session_env
    from evs_ros.tools.common import hardware_info, hardware_line
    args = parse_args(argv)
    config = EvsConfig()
    config = replace(config, operating_point=operating_point(args.operating_point),
                     model=replace(config.model, backend=args.backend, refiner=''))
    model, _ = load_models(config.model)
    env = session_env()
    runs = []
    for size in args.sizes.split(','):
        width, height = (int(v) for v in size.split('x'))
        for _ in range(args.repeats):
            for publisher in args.publishers.split(','):
                runs.append(measure(args, (width, height), publisher, config, model, env))
                print(json.dumps(runs[-1]), flush=True)
    rows = summarize(runs)
    os.makedirs(args.out, exist_ok=True)
    name = f'publish_cost_{args.topics}'
    summary = {'hardware': hardware_line(hardware_info()), 'command': ' '.join(sys.argv),
               'rows': rows, 'runs': runs}
    with open(os.path.join(args.out, name + '.json'), 'w') as out:
        json.dump(summary, out, indent=2)
    lines = ['| size | topics | publisher | stepper ms p50 | publishing ms p50 | on the flow '
             'worker ms p50 | share of a propagated frame | frames/s |',
             '|---|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(f"| {row['size']} | {','.join(row['topics'])} | {row['publisher']} | "
                     f"{row['stepper_ms_p50']:.1f} | {row['publish_work_ms_p50']:.1f} | "
                     f"{row['publish_on_flow_worker_ms_p50']:.2f} | "
                     f"{100 * row['publish_share_of_frame']:.1f} % | {row['frames_per_s']:.1f} |")
    with open(os.path.join(args.out, name + '.md'), 'w') as out:
        out.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def summarize(runs):
    """One row per (size, publisher): the median of each figure over the repeats."""
    rows = []
    for key in dict.fromkeys((run['size'], run['publisher']) for run in runs):
        group = [run for run in runs if (run['size'], run['publisher']) == key]
        row = dict(group[0], repeats=len(group))
        for name, value in group[0].items():
            if isinstance(value, float):
                row[name] = float(np.median([run[name] for run in group]))
        rows.append(row)
    return rows


if __name__ == '__main__':
    sys.exit(main())
