"""Play frames into a running evs_node over DDS and record what comes back.

Used by ``evs demo``, the latency benchmark and the integration tests: an rclpy node in its own
context (own domain id) that publishes ``sensor_msgs/Image`` on ``<prefix>image`` and records
every output topic with its receipt time, so latency is measured from publication to receipt.
"""

import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from evs_ros.msg import FrameStatus
from evs_ros.ros import conversions
from evs_ros.ros.cameras import OUTPUT_TOPICS

DDS_VARIABLES = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'RMW_IMPLEMENTATION',
                 'FASTDDS_DEFAULT_PROFILES_FILE')
"""What a session sets for its DDS participants besides the domain id (which rclpy takes as an
argument): discovery range, middleware and FastDDS profile are read from the environment only."""


def node_executable() -> str:
    """Return the installed ``evs_node``, found as ``ros2 run evs_ros evs_node`` finds it."""
    from ament_index_python.packages import get_package_prefix
    path = os.path.join(get_package_prefix('evs_ros'), 'lib', 'evs_ros', 'evs_node')
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f'{path} is not installed: run scripts/setup.sh (colcon build)')
    return path


def start_node(env: dict, params_file: str, overrides: Dict[str, object] = None,
               namespace: str = '', log_path: Optional[str] = None,
               ros_args: Tuple[str, ...] = ()) -> subprocess.Popen:
    """Start evs_node as its own process (own session, so it can be stopped with SIGINT).

    ``env`` is its whole environment; ``ros_args`` go after the parameters (``--log-level``).
    """
    args = [node_executable(), '--ros-args', '--params-file', params_file]
    for name, value in (overrides or {}).items():
        args += ['-p', f'{name}:={value}']
    if namespace:
        args += ['-r', f'__ns:=/{namespace}']
    args += list(ros_args)
    if not log_path:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with open(log_path, 'w') as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_node(process: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """SIGINT, then SIGKILL after ``timeout_s``; returns the exit code."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextmanager
def dds_environment(env: Optional[dict]) -> Iterator[None]:
    """Apply ``env``'s :data:`DDS_VARIABLES` while a DDS participant is created, then restore.

    rcl reads the discovery range when a context initialises, rmw the rest when the context's
    first node creates its participant (FastDDS loads its profile file once per process); rclpy
    takes them from nowhere else. Outside this block the process environment is as the caller
    left it.
    """
    if not env:
        yield
        return
    saved = {name: os.environ.get(name) for name in DDS_VARIABLES}
    os.environ.update({name: env[name] for name in DDS_VARIABLES if name in env})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def image_msg(image: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = 'camera'):
    """Return a sensor_msgs/Image of a contiguous uint8 array (no padding)."""
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = image.shape[:2]
    msg.encoding = encoding
    msg.step = image.strides[0]
    msg.data = conversions.uint8_array(image)  # array.array: the setter's fast path
    return msg


class _HeaderOnly:
    """What a player keeps of an output image when ``headers_only`` is set."""

    __slots__ = ('header',)

    def __init__(self, header):
        self.header = header


class FramePlayer:
    """Publishes images to ``<prefix>image`` and records outputs with receipt times.

    With ``headers_only`` only the header of output images is kept (long benchmark runs); status
    messages are always kept whole. ``dds_env``: the session's environment (discovery range,
    middleware, FastDDS profile; see :func:`dds_environment`), None for the process's own.

    Attributes:
        received: topic -> list of (receipt time in s (time.monotonic), message).
        published: stamp_ns -> publication time in s (time.monotonic).
    """

    def __init__(self, domain_id: int, prefix: str = '', reliable: bool = False,
                 topics=OUTPUT_TOPICS, on_message: Callable = None, headers_only: bool = False,
                 dds_env: Optional[dict] = None):
        self.context = rclpy.Context()
        with dds_environment(dds_env):  # rcl reads them at init, rmw with the first node
            rclpy.init(context=self.context, domain_id=domain_id)
            self.node = rclpy.create_node(f'evs_player_{os.getpid()}_{id(self) % 10000}',
                                          context=self.context)
        qos = (QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE) if reliable
               else qos_profile_sensor_data)
        self.prefix = prefix
        self.topics = tuple(topics)
        self.on_message = on_message
        self.headers_only = headers_only
        self.received: Dict[str, List[Tuple[float, object]]] = defaultdict(list)
        self.published: Dict[int, float] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition()  # notified on every recorded message
        self.publisher = self.node.create_publisher(Image, prefix + 'image', qos)
        for topic in self.topics:
            msg_type = FrameStatus if topic == 'status' else Image
            self.node.create_subscription(msg_type, prefix + topic,
                                          lambda m, t=topic: self._record(t, m), qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _record(self, topic: str, msg) -> None:
        now_s = time.monotonic()
        if self.on_message is not None:
            self.on_message(topic, msg)
        if self.headers_only and topic != 'status':
            msg = _HeaderOnly(msg.header)
        with self.lock:
            self.received[topic].append((now_s, msg))
        with self.arrived:
            self.arrived.notify_all()

    def clear(self) -> None:
        """Forget everything recorded and published so far."""
        with self.lock:
            self.received.clear()
            self.published.clear()

    def messages(self, topic: str) -> list:
        with self.lock:
            return [msg for _, msg in self.received[topic]]

    def count(self, topic: str) -> int:
        with self.lock:
            return len(self.received[topic])

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        """Wait until ``predicate()`` is true; re-checked on every message and every 20 ms."""
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return True
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return False
            with self.arrived:
                self.arrived.wait(min(0.02, remaining_s))

    def wait_for_node(self, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
        """Wait until the node subscribes ``image`` and publishes every recorded output.

        Raises:
            RuntimeError: the node exited or did not come up within ``timeout_s``.
        """
        def ready():
            return process.poll() is not None or (
                self.publisher.get_subscription_count() > 0 and all(
                    self.node.count_publishers(self._resolved(t)) > 0 for t in self.topics))
        up = self.wait_for(ready, timeout_s)
        if process.poll() is not None:
            raise RuntimeError(f'evs_node exited with code {process.returncode}')
        if not up:
            raise RuntimeError(f'evs_node did not come up within {timeout_s:.0f} s')
        # Let the outputs' discovery settle so that the first frames' outputs are not lost.
        self.wait_for(lambda: all(self.node.count_subscribers(self._resolved(t)) > 0
                                  for t in self.topics), 5.0)
        time.sleep(0.5)

    def _resolved(self, topic: str) -> str:
        name = self.prefix + topic
        return name if name.startswith('/') else '/' + name

    def publish(self, image: np.ndarray, stamp_ns: int, encoding: str = 'bgr8',
                frame_id: str = 'camera') -> None:
        msg = image_msg(image, encoding, stamp_ns, frame_id)
        with self.lock:
            self.published[int(stamp_ns)] = time.monotonic()
        self.publisher.publish(msg)

    def publish_msg(self, msg) -> None:
        with self.lock:
            self.published[conversions.stamp_to_ns(msg.header.stamp)] = time.monotonic()
        self.publisher.publish(msg)

    def latencies_ms(self, topic: str = 'labels') -> Dict[int, float]:
        """stamp_ns -> publication-to-receipt latency of ``topic`` in ms."""
        with self.lock:
            out = {}
            for received_s, msg in self.received[topic]:
                stamp_ns = conversions.stamp_to_ns(msg.header.stamp)
                if stamp_ns in self.published:
                    out[stamp_ns] = (received_s - self.published[stamp_ns]) * 1000.0
            return out

    def close(self) -> None:
        self.running = False
        self.thread.join(2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
