"""Helpers for the DDS integration tests of the installed evs_node (not a test module).

``NodeHarness`` starts the node as its own process with the fake ``python:`` backend and attaches
one :class:`~evs_ros.testing.player.FramePlayer` per camera prefix; everything is stopped by
``close()``. Frames are uniform colours, so the fake network's class (blue // 14) is known.
"""

import os
import threading
import time
from typing import Dict, Iterable, Optional

import numpy as np

from conftest import REPO
from evs_ros.testing.player import OUTPUT_TOPICS, FramePlayer, start_node, stop_node

PARAMS_FILE = os.path.join(REPO, 'config', 'evs.yaml')
FAKE_BACKEND = 'python:fake_models:make_model'
SLOW_BACKEND = 'python:fake_models:make_slow_model'
FAILING_BACKEND = 'python:fake_models:make_failing_model'
STAMP0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 50_000_000


def uniform_frame(blue: int, height: int = 64, width: int = 96) -> np.ndarray:
    """uint8 (H, W, 3) BGR frame of one colour; the fake network labels it ``blue // 14``."""
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[..., 0] = blue
    return frame


def stamp(index: int) -> int:
    """Stamp in ns of the ``index``-th frame of a 20 Hz stream."""
    return STAMP0_NS + index * PERIOD_NS


def header_key(msg):
    """(sec, nanosec, frame_id) of a message's header, for comparisons."""
    return (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)


def labels_array(msg) -> np.ndarray:
    """uint8 (H, W) labels of a mono8 Image."""
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return rows[:, :msg.width]


class DiagnosticsRecorder:
    """Records the /diagnostics arrays a player's node receives."""

    def __init__(self, player):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        self.arrays = []
        self.lock = threading.Lock()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        player.node.create_subscription(DiagnosticArray, '/diagnostics', self._record, qos)

    def _record(self, array):
        with self.lock:
            self.arrays.append(array)

    def latest(self):
        with self.lock:
            return self.arrays[-1] if self.arrays else None

    def count(self) -> int:
        with self.lock:
            return len(self.arrays)

    def status(self, name: str):
        """Return the newest DiagnosticStatus called ``name`` (None before the first)."""
        with self.lock:
            for array in reversed(self.arrays):
                for status in array.status:
                    if status.name == name:
                        return status
        return None

    def seen(self, name: str, level: bytes, text: str) -> bool:
        """Tell whether a status ``name`` so far had ``level`` and ``text`` in its message."""
        with self.lock:
            return any(status.name == name and status.level == level and text in status.message
                       for array in self.arrays for status in array.status)

    def values(self, array, name: str) -> dict:
        """Return the key/value pairs of the status called ``name`` in ``array``."""
        status = next(s for s in array.status if s.name == name)
        return {kv.key: kv.value for kv in status.values}

    def values_of(self, name: str) -> dict:
        """Return the key/value pairs of the newest status ``name`` ({} before the first)."""
        status = self.status(name)
        return {} if status is None else {kv.key: kv.value for kv in status.values}


class NodeHarness:
    """A running evs_node process plus players (one per camera prefix) in the test's domain."""

    def __init__(self, ros_env: dict, log_path: str, overrides: Dict[str, object] = None,
                 prefixes: Iterable[str] = ('',), reliable: bool = True,
                 topics: Iterable[str] = OUTPUT_TOPICS, namespace: str = '',
                 ros_args: Iterable[str] = (), remaps: Dict[str, str] = None):
        params = {'model.backend': FAKE_BACKEND, 'model.refiner': "''",
                  'publish.qos_reliability': 'reliable' if reliable else 'best_effort',
                  'publish.input_qos_reliability': 'reliable' if reliable else 'best_effort',
                  'publish.qos_depth': 100 if reliable else 1}
        params.update(overrides or {})
        self.log_path = log_path
        self.domain_id = int(ros_env['ROS_DOMAIN_ID'])
        ros_args = list(ros_args)
        for source, target in (remaps or {}).items():
            ros_args += ['-r', f'{source}:={target}']
        self.process = start_node(ros_env, PARAMS_FILE, params, namespace=namespace,
                                  log_path=log_path, ros_args=tuple(ros_args))
        self.players = {}
        try:
            for prefix in prefixes:
                self.players[prefix] = FramePlayer(self.domain_id, prefix=prefix,
                                                   reliable=reliable, topics=topics)
            for player in self.players.values():
                player.wait_for_node(self.process)
        except RuntimeError as error:
            self.close()
            raise RuntimeError(f'{error}\n{self.log()}')

    @property
    def player(self) -> FramePlayer:
        """The player of the first prefix."""
        return next(iter(self.players.values()))

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        with open(self.log_path, encoding='utf-8', errors='replace') as log:
            return log.read()

    def wait_log(self, text: str, timeout_s: float = 10.0) -> bool:
        """Wait until ``text`` appears in the node's log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return text in self.log()

    def send_and_wait(self, frame: np.ndarray, stamp_ns: int, player: FramePlayer = None,
                      timeout_s: float = 20.0) -> bool:
        """Publish one good frame and wait for its ``status`` (published last), else ``labels``."""
        player = player or self.player
        topic = 'status' if 'status' in player.topics else 'labels'
        before = player.count(topic)
        player.publish(frame, stamp_ns)
        return player.wait_for(lambda: player.count(topic) > before, timeout_s)

    def wait_counts(self, count: int, player: FramePlayer = None, timeout_s: float = 20.0):
        """Wait until every recorded topic has ``count`` messages (topics arrive independently).

        Returns {topic: messages received} for assertion messages.
        """
        player = player or self.player
        player.wait_for(lambda: all(player.count(t) >= count for t in player.topics), timeout_s)
        return {t: player.count(t) for t in player.topics}

    def last_status(self, player: FramePlayer = None):
        return (player or self.player).messages('status')[-1]

    def close(self) -> Optional[int]:
        for player in self.players.values():
            player.close()
        self.players = {}
        return stop_node(self.process)
