"""A recorded session with a real evs_node over DDS: start it, play clips at camera rate, collect.

Shared by ``evs demo`` and ``evs bench latency``. The node runs as its own process (the installed
executable), in an isolated ROS domain with localhost-only discovery and the shipped FastDDS
profile; frames are published with sensor-data QoS like a camera driver would. The session's DDS
settings go to the node through its environment and to the in-process player through
:class:`~evs_ros.testing.player.FramePlayer`; the caller's ``os.environ`` is never changed.
"""

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np

from evs_ros.ros import conversions
from evs_ros.testing.player import OUTPUT_TOPICS, FramePlayer, start_node, stop_node

STAMP0_NS = 1_700_000_000_000_000_000


def session_env(domain_id: Optional[int] = None) -> dict:
    """Environment for an isolated session: own domain, localhost discovery, FastDDS profile."""
    from ament_index_python.packages import get_package_share_directory
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else 1 + os.getpid() % 100)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', os.path.join(
        get_package_share_directory('evs_ros'), 'config', 'fastdds_large_images.xml'))
    return env


def default_params_file() -> str:
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('evs_ros'), 'config', 'evs.yaml')


@dataclass
class ClipRecord:
    """What came back for one played clip.

    ``outputs[stamp_ns]`` maps a frame's stamp to its decoded outputs: ``labels`` uint8 (H, W),
    ``overlay_bgr`` uint8 (H, W, 3), ``mask`` uint8 (H, W) and ``status`` (FrameStatus fields as a
    dict); ``latency_ms[stamp_ns]`` is publication-to-receipt of ``labels``.
    """

    name: str
    stamps_ns: List[int]
    rate_hz: float
    play_s: float = 0.0
    outputs: Dict[int, dict] = field(default_factory=dict)
    latency_ms: Dict[int, float] = field(default_factory=dict)


class NodeSession:
    """Context manager: a running evs_node plus a FramePlayer attached to it.

    ``topics`` are the outputs the player subscribes to (the node skips work for the others);
    ``headers_only`` keeps only the headers of received images (see FramePlayer).
    """

    def __init__(self, overrides: Dict[str, object], log_path: str,
                 params_file: Optional[str] = None, domain_id: Optional[int] = None,
                 keep_outputs: bool = True, startup_timeout_s: float = 120.0,
                 topics: Iterable[str] = OUTPUT_TOPICS, headers_only: bool = False):
        self.env = session_env(domain_id)
        self.overrides = overrides
        self.log_path = log_path
        self.params_file = params_file or default_params_file()
        self.keep_outputs = keep_outputs
        self.startup_timeout_s = startup_timeout_s
        self.topics = tuple(topics)
        self.headers_only = headers_only
        self.process = None
        self.player = None
        self.decoded: Dict[int, dict] = {}

    def __enter__(self) -> 'NodeSession':
        self.process = start_node(self.env, self.params_file, self.overrides,
                                  log_path=self.log_path)
        try:
            self.player = FramePlayer(int(self.env['ROS_DOMAIN_ID']), topics=self.topics,
                                      on_message=self._decode, headers_only=self.headers_only,
                                      dds_env=self.env)
        except BaseException:
            stop_node(self.process)  # never leave the node behind
            raise
        try:
            self.player.wait_for_node(self.process, self.startup_timeout_s)
        except RuntimeError as error:
            self.__exit__(None, None, None)
            raise RuntimeError(f'{error}; node log: {self.log_path}\n{self._log_tail()}')
        return self

    def __exit__(self, *exc_info) -> None:
        if self.player is not None:
            self.player.close()
        if self.process is not None:
            stop_node(self.process)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as log:
                return ''.join(log.readlines()[-lines:])
        except OSError:
            return ''

    def _decode(self, topic: str, msg) -> None:
        if not self.keep_outputs:
            return
        stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
        entry = self.decoded.setdefault(stamp_ns, {})
        if topic == 'status':
            entry['status'] = {name: getattr(msg, name)
                               for name in msg.get_fields_and_field_types() if name != 'header'}
        elif topic == 'overlay':
            entry['overlay_bgr'] = conversions.image_msg_to_bgr(msg)
        else:
            key = 'mask' if topic == 'inconsistency_mask' else topic
            if topic == 'labels_color':
                return  # the overlay shows the colours; keep memory small
            entry[key] = _mono(msg)

    def play(self, name: str, frames: Iterable[np.ndarray], rate_hz: float,
             stamp0_ns: int = STAMP0_NS, progress: Callable[[int], None] = None,
             settle_s: float = 5.0) -> ClipRecord:
        """Publish ``frames`` (BGR uint8) at ``rate_hz`` and collect their outputs."""
        period_s = 1.0 / rate_hz
        stamps = []
        start_s = time.monotonic()
        for index, frame in enumerate(frames):
            target_s = start_s + index * period_s
            time.sleep(max(0.0, target_s - time.monotonic()))
            stamp_ns = stamp0_ns + int(index * period_s * 1e9)
            self.player.publish(frame, stamp_ns)
            stamps.append(stamp_ns)
            if progress:
                progress(1)
        play_s = time.monotonic() - start_s
        wanted = set(stamps)
        self.player.wait_for(lambda: wanted <= set(self._labelled()), settle_s)
        record = ClipRecord(name, stamps, rate_hz, play_s)
        latencies = self.player.latencies_ms('labels')
        record.latency_ms = {s: latencies[s] for s in stamps if s in latencies}
        record.outputs = {s: self.decoded.pop(s) for s in stamps if s in self.decoded}
        return record

    def _labelled(self):
        return [s for s, entry in list(self.decoded.items()) if 'labels' in entry] \
            if self.keep_outputs else list(self.player.latencies_ms('labels'))


def _mono(msg) -> np.ndarray:
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return data[:, :msg.width].copy()
