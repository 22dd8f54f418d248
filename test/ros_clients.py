"""Helpers for the container and lifecycle integration tests (not a test module).

``start_executable`` runs an installed evs_ros executable as its own process group (so SIGINT
reaches it as from a terminal); :class:`ServiceCaller` calls ROS services from the test, in its
own rclpy context and domain, with a spinning thread.
"""

import os
import subprocess
import threading
import time
from typing import List, Optional

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor


def executable(name: str) -> str:
    """Return the installed ``lib/evs_ros/<name>``, as ``ros2 run evs_ros <name>`` finds it."""
    from ament_index_python.packages import get_package_prefix
    path = os.path.join(get_package_prefix('evs_ros'), 'lib', 'evs_ros', name)
    assert os.access(path, os.X_OK), f'{path} is not installed: run scripts/setup.sh'
    return path


def start_executable(name: str, env: dict, ros_args: List[str], log_path: str
                     ) -> subprocess.Popen:
    """Start ``lib/evs_ros/<name> --ros-args ROS_ARGS`` in its own session, output to a file."""
    log = open(log_path, 'w')
    return subprocess.Popen([executable(name), '--ros-args'] + ros_args, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def read_log(path: str) -> str:
    with open(path, encoding='utf-8', errors='replace') as log:
        return log.read()


def wait_until(predicate, timeout_s: float = 10.0, period_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s``; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


class ServiceCaller:
    """Calls services of other processes from the test (own context and domain)."""

    def __init__(self, domain_id: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f'evs_test_caller_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.clients = {}
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def call_async(self, srv_type, name: str, request, wait_s: float = 30.0):
        """Start a call of service ``name``; returns its future."""
        key = (srv_type, name)
        if key not in self.clients:
            self.clients[key] = self.node.create_client(srv_type, name)
        client = self.clients[key]
        assert client.wait_for_service(timeout_sec=wait_s), f'no service {name}'
        return client.call_async(request)

    def call(self, srv_type, name: str, request, timeout_s: float = 30.0):
        """Call service ``name`` and return the response (fails the test on timeout)."""
        future = self.call_async(srv_type, name, request, timeout_s)
        assert wait_until(future.done, timeout_s), f'{name}: no answer within {timeout_s} s'
        return future.result()

    def query(self, srv_type, name: str, request, attempts: int = 3, timeout_s: float = 10.0):
        """Call a service without side effects, asking again when no answer comes.

        The first request after discovery can go unanswered: the server's reply writer may not
        have matched this client's reader yet, and DDS drops the reply. Only for queries (a
        repeated request changes nothing).
        """
        for _ in range(attempts):
            future = self.call_async(srv_type, name, request, timeout_s)
            if wait_until(future.done, timeout_s):
                return future.result()
        raise AssertionError(f'{name}: no answer to {attempts} requests of {timeout_s} s')

    def node_names(self) -> List[str]:
        """Fully qualified names of the nodes in the graph."""
        return [ns.rstrip('/') + '/' + name
                for name, ns in self.node.get_node_names_and_namespaces()]

    def close(self) -> None:
        self.running = False
        self.thread.join(2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def answer(player, blue: int, index: int):
    """Send ``player`` one uniform frame (stamp ``index``).

    Returns (label values, status) of its answer (the fake network labels it ``blue // 14``).
    """
    from node_harness import labels_array, stamp, uniform_frame
    before = player.count('status')
    player.publish(uniform_frame(blue), stamp(index))
    assert player.wait_for(lambda: player.count('status') > before
                           and player.count('labels') > before, 20), 'no answer'
    labels = set(int(value) for value in np.unique(labels_array(player.messages('labels')[-1])))
    return labels, player.messages('status')[-1]


def parameter_msg(name: str, value):
    """Return an rcl_interfaces/Parameter message of a Python value."""
    from rclpy.parameter import Parameter
    return Parameter(name, value=value).to_parameter_msg()


def exit_code(process: subprocess.Popen, timeout_s: float = 15.0) -> Optional[int]:
    """Wait for ``process`` to end by itself; None if it is still running after ``timeout_s``."""
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None
