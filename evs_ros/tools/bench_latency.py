r"""``evs bench latency``: end-to-end latency of the installed evs_node over real DDS (design §7).

For every operating point (one node process each), resolution and offered rate, frames of a
panning texture are published like a camera driver would (sensor-data QoS) and the ``labels``
outputs are timed from publication to receipt. Reported per run: latency p50/p99, output Hz,
frames dropped by the node (latest-frame buffer) and lost before it (best-effort DDS with the
node's history depth, ``publish.qos_depth``: keep-last drops the oldest), the node's own stage
times from ``status`` (``total_ms``, ``flow_ms``, ``warp_ms``), the "ROS overhead" at p50
(end-to-end latency minus the node's processing time: conversion, DDS, queueing), a backlog check
(latency of the last quarter of the frames vs the first quarter: a node that cannot keep up
without dropping would show it growing).

    evs bench latency --json out/latency.json --resolutions 1024x512,2048x1024 \
        --operating-points EVS05,EVS07,EVS10 --rates 17,max --frames 100

``max`` publishes back to back, as fast as the publisher can, for ``--frames`` frames and at
least ``--max-seconds``; the publisher then shares the CPU with the node. Only ``--topics`` are
subscribed (default ``labels,status``): the node skips colouring and overlays nobody subscribes
to.
"""

import math
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from evs_ros.data.synth import panning_frames
from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common

WARM_UP_FRAMES = 5
STAMP0_NS = 1_700_000_000_000_000_000
BACKLOG_RATIO = 1.5
BACKLOG_MIN_MS = 20.0


def add_arguments(parser) -> None:
    parser.add_argument('--json', required=True, help='output JSON file (a .md table is written '
                        'next to it)')
    parser.add_argument('--resolutions', default='1024x512,2048x1024', help='comma list of WxH')
    parser.add_argument('--operating-points', default='EVS05,EVS07,EVS10',
                        help='comma list of presets (EVS01..EVS14, ADAPTIVE, PERFRAME, NAME@T)')
    parser.add_argument('--rates', default='17,max',
                        help="comma list of offered rates in Hz, 'max' = as fast as possible")
    parser.add_argument('--frames', type=int, default=100, help='measured frames per run')
    parser.add_argument('--max-seconds', type=float, default=3.0,
                        help="at rate 'max', keep publishing for at least this long")
    parser.add_argument('--topics', default='labels,status',
                        help='outputs to subscribe (labels and status are always included)')
    parser.add_argument('--domain-id', type=int, default=-1,
                        help='ROS_DOMAIN_ID of the session (default: derived from the pid)')
    parser.add_argument('--log-dir', default='', help='node logs (default: next to --json)')
    common.add_config_arguments(parser, operating_point_flag=False, threads=False)


def parse_rates(text: str) -> List[Optional[float]]:
    """'17,max' -> [17.0, None] (None = as fast as possible)."""
    rates = []
    for item in filter(None, (part.strip().lower() for part in text.split(','))):
        rates.append(None if item == 'max' else float(item))
        if rates[-1] is not None and rates[-1] <= 0:
            raise ValueError(f'rate {item!r} must be > 0 or max')
    return rates


def bench_frames(size_wh: Tuple[int, int], count: int = 24) -> List[np.ndarray]:
    """BGR uint8 (H, W, 3) frames of a texture panning 3 px per frame (played in a loop)."""
    gray = panning_frames(size_wh, count)
    tint = np.linspace(0, 255, size_wh[0], dtype=np.float32).astype(np.uint8)[None, :]
    return [np.dstack([frame, np.broadcast_to(tint, frame.shape), 255 - frame])
            for frame in gray]


def percentile(values, percent: float) -> float:
    """One percentile of ``values`` (NaN without values)."""
    return percentiles(values, (percent,), digits=None, empty=math.nan)[f'p{percent:g}']


class RatePublisher:
    """Publishes pre-built messages at a rate through a NodeSession's FramePlayer."""

    def __init__(self, session):
        from evs_ros.testing.player import image_msg
        self.player = session.player
        self.image_msg = image_msg
        self.next_index = 0

    def messages(self, frames: List[np.ndarray]) -> list:
        return [self.image_msg(frame, 'bgr8', STAMP0_NS) for frame in frames]

    def stamp_ns(self) -> int:
        """Return a new stamp, strictly after every earlier one of this node (20 ms apart)."""
        self.next_index += 1
        return STAMP0_NS + self.next_index * 20_000_000

    def publish(self, msg) -> int:
        stamp_ns = self.stamp_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        self.player.publish_msg(msg)
        return stamp_ns

    def warm_up(self, msgs: list) -> int:
        """Return a few frames one at a time (first keyframe, resolution reset), then forget them.

        Returns the node's cumulative drop counter after the warm-up.
        """
        for index in range(WARM_UP_FRAMES):
            before = self.player.count('status')
            self.publish(msgs[index % len(msgs)])
            self.player.wait_for(lambda: self.player.count('status') > before, 60.0)
        time.sleep(0.2)
        statuses = self.player.messages('status')
        self.player.clear()
        return int(statuses[-1].frames_dropped) if statuses else 0

    def play(self, msgs: list, count: int, rate_hz: Optional[float],
             min_seconds: float = 0.0) -> Tuple[List[int], float]:
        """Publish ``count`` frames at ``rate_hz``; returns (stamps, seconds spent publishing).

        ``rate_hz`` None publishes back to back, for at least ``min_seconds``.
        """
        stamps = []
        start_s = time.monotonic()
        index = 0
        while index < count or (rate_hz is None and time.monotonic() - start_s < min_seconds):
            if rate_hz:
                time.sleep(max(0.0, start_s + index / rate_hz - time.monotonic()))
            stamps.append(self.publish(msgs[index % len(msgs)]))
            index += 1
        play_s = time.monotonic() - start_s
        self.player.wait_for(lambda: any(_stamp_ns(m) >= stamps[-1]
                                         for m in self.player.messages('status')[-3:]), 10.0)
        time.sleep(0.3)  # stragglers of best-effort delivery
        return stamps, play_s


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _output_window_s(player, stamps: List[int]) -> float:
    """Seconds from publishing the first frame to receiving the last ``labels`` (0 if none)."""
    wanted = set(stamps)
    with player.lock:
        receipts = [t for t, m in player.received['labels'] if _stamp_ns(m) in wanted]
        first_s = player.published.get(stamps[0])
    return max(receipts) - first_s if receipts and first_s is not None else 0.0


def summarize(player, stamps: List[int], play_s: float, dropped_before: int) -> Dict[str, object]:
    """Latency percentiles, rates, drops and node stage times of one run."""
    latency = player.latencies_ms('labels')
    ordered = [latency[s] for s in stamps if s in latency]  # in publication order
    wanted = set(stamps)
    statuses = [m for m in player.messages('status') if _stamp_ns(m) in wanted]
    dropped = int(statuses[-1].frames_dropped) - dropped_before if statuses else 0
    window_s = _output_window_s(player, stamps) or play_s
    quarter = max(1, len(ordered) // 4)
    first_q, last_q = percentile(ordered[:quarter], 50), percentile(ordered[-quarter:], 50)
    result = {
        'frames_offered': len(stamps), 'frames_with_labels': len(ordered),
        'offered_hz': len(stamps) / play_s, 'output_hz': len(ordered) / window_s,
        'dropped_by_node': dropped,
        'lost_in_transport': max(0, len(stamps) - len(ordered) - dropped),
        'latency_ms_p50': percentile(ordered, 50), 'latency_ms_p99': percentile(ordered, 99),
        'node_total_ms_p50': percentile((s.total_ms for s in statuses), 50),
        'node_total_ms_p99': percentile((s.total_ms for s in statuses), 99),
        'node_flow_ms_p50': percentile((s.flow_ms for s in statuses if s.flow_ms > 0), 50),
        'node_warp_ms_p50': percentile((s.warp_ms for s in statuses if s.warp_ms > 0), 50),
        'node_receipt_to_publish_ms_p50': percentile((s.latency_ms for s in statuses), 50),
        'keyframes': sum(bool(s.keyframe_requested) for s in statuses),
        'latency_first_quarter_ms_p50': first_q, 'latency_last_quarter_ms_p50': last_q,
    }
    result['ros_overhead_ms_p50'] = result['latency_ms_p50'] - result['node_total_ms_p50']
    result['backlog_ratio'] = last_q / first_q if first_q > 0 else float('nan')
    result['backlog_growing'] = bool(result['backlog_ratio'] > BACKLOG_RATIO
                                     and last_q - first_q > BACKLOG_MIN_MS)
    return result


def subscribed_topics(args) -> List[str]:
    """``--topics`` plus labels and status (always needed for the measurement)."""
    return sorted({'labels', 'status'} | set(filter(None, args.topics.split(','))))


def bench_operating_point(name: str, args, frames_by_size) -> List[Dict[str, object]]:
    """Every resolution x rate for one operating point, in one node process."""
    from evs_ros.testing.session import NodeSession
    overrides = {key: value if value != '' else "''"
                 for key, value in common.explicit_settings(args).items()}
    overrides['operating_point.preset'] = name
    topics = subscribed_topics(args)
    results = []
    with NodeSession(overrides, os.path.join(args.log_dir, f'node_{name}.log'),
                     params_file=args.params, keep_outputs=False, topics=topics,
                     headers_only=True,
                     domain_id=args.domain_id if args.domain_id >= 0 else None) as session:
        player = RatePublisher(session)
        for size_wh, frames in frames_by_size.items():
            msgs = player.messages(frames)
            for rate_hz in parse_rates(args.rates):
                dropped_before = player.warm_up(msgs)
                stamps, play_s = player.play(msgs, args.frames, rate_hz, args.max_seconds)
                result = {'operating_point': name, 'resolution': f'{size_wh[0]}x{size_wh[1]}',
                          'rate': 'max' if rate_hz is None else rate_hz, 'topics': topics}
                result.update(summarize(session.player, stamps, play_s, dropped_before))
                results.append(result)
                print(markdown_row(result), flush=True)
                session.player.clear()
    return results


COLUMNS = (('operating_point', 'op', '{}'), ('resolution', 'resolution', '{}'),
           ('rate', 'offered', '{}'), ('offered_hz', 'offered Hz', '{:.1f}'),
           ('output_hz', 'output Hz', '{:.1f}'), ('latency_ms_p50', 'latency p50 ms', '{:.1f}'),
           ('latency_ms_p99', 'latency p99 ms', '{:.1f}'),
           ('node_total_ms_p50', 'node total p50 ms', '{:.1f}'),
           ('node_flow_ms_p50', 'flow p50 ms', '{:.1f}'),
           ('node_warp_ms_p50', 'warp p50 ms', '{:.1f}'),
           ('ros_overhead_ms_p50', 'ROS overhead p50 ms', '{:.1f}'),
           ('dropped_by_node', 'dropped by node', '{}'),
           ('lost_in_transport', 'lost before node', '{}'),
           ('backlog_ratio', 'last/first quarter', '{:.2f}'))


def markdown_header() -> str:
    names = [title for _, title, _ in COLUMNS]
    return '| ' + ' | '.join(names) + ' |\n|' + '---|' * len(names)


def markdown_row(result: Dict[str, object]) -> str:
    return '| ' + ' | '.join(fmt.format(result[key]) for key, _, fmt in COLUMNS) + ' |'


def markdown(summary: Dict[str, object]) -> str:
    lines = [f'# evs bench latency ({summary["backend"]})', '',
             f'Hardware: {summary["hardware"]}. {summary["frames"]} frames per run (rate max: at '
             f'least {summary["max_seconds"]} s of frames) after '
             f'{WARM_UP_FRAMES} warm-up frames; subscribed topics: '
             f'{", ".join(summary["topics"])}. Latency = publication of the image to receipt of '
             'its `labels`; ROS overhead = latency p50 - node total_ms p50.', '',
             markdown_header()]
    lines += [markdown_row(result) for result in summary['results']]
    return '\n'.join(lines) + '\n'


def run(args) -> int:
    """Measure every operating point x resolution x rate; write JSON and markdown."""
    try:
        sizes = common.parse_sizes(args.resolutions)
        parse_rates(args.rates)  # fail early on a typo
        config = common.build_config(args)
        names = [op.name for op in common.parse_operating_points([args.operating_points])]
    except common.USER_ERRORS as error:
        return common.fail('bench latency', error)
    out_dir = os.path.dirname(os.path.abspath(args.json))
    args.log_dir = args.log_dir or out_dir
    os.makedirs(args.log_dir, exist_ok=True)
    frames_by_size = {size: bench_frames(size) for size in sizes}
    summary = {'backend': config.model.backend, 'refiner': config.model.refiner,
               'hardware': common.hardware_line(common.hardware_info()),
               'frames': args.frames, 'max_seconds': args.max_seconds,
               'topics': subscribed_topics(args), 'results': []}
    print(markdown_header())
    for name in names:
        summary['results'] += bench_operating_point(name, args, frames_by_size)
    common.write_json(args.json, summary)  # a stage a run missed is null
    md_path = os.path.splitext(args.json)[0] + '.md'
    common.write_text(md_path, markdown(summary))
    print(f'wrote {args.json} and {md_path}')
    return 0 if all(r['frames_with_labels'] > 0 for r in summary['results']) else 1
