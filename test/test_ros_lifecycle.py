"""Integration.

The installed evs_lifecycle_node over real DDS, driven through the standard lifecycle services with
transition ids, as a Nav2-style lifecycle manager drives it.
"""

import os
import time

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

from conftest import REPO
from evs_ros.testing.player import FramePlayer, stop_node
from node_harness import uniform_frame, stamp
from ros_clients import ServiceCaller, answer, read_log, start_executable, wait_until

PARAMS_FILE = os.path.join(REPO, 'config', 'evs.yaml')
NODE_PARAMS = {'model.backend': 'python:fake_models:make_model', 'model.refiner': "''",
               'publish.qos_reliability': 'reliable',
               'publish.input_qos_reliability': 'reliable', 'publish.qos_depth': 100}
QUIET_S = 1.0
"""How long the tests watch for outputs that must not come."""


class ManagedNode:
    """A running evs_lifecycle_node, a service caller and a frame player."""

    def __init__(self, env: dict, log_path: str, overrides=None):
        args = ['--params-file', PARAMS_FILE]
        for name, value in dict(NODE_PARAMS, **(overrides or {})).items():
            args += ['-p', f'{name}:={value}']
        self.log_path = log_path
        self.process = start_executable('evs_lifecycle_node', env, args, log_path)
        domain_id = int(env['ROS_DOMAIN_ID'])
        self.caller = ServiceCaller(domain_id)
        self.player = FramePlayer(domain_id, reliable=True, topics=('labels', 'status'))
        self.sent = 0

    def change(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.caller.call(ChangeState, '/evs_lifecycle_node/change_state', request).success

    def try_change(self, transition_id: int, timeout_s: float = 5.0) -> bool:
        """Return whether a transition not available now succeeded.

        Kilted's rclpy answers ``success: false``; Humble's and Jazzy's raise inside the service
        (evs_ros logs one line and goes on, :func:`evs_ros.ros.compat.spin_once`) and the request
        stays unanswered.
        """
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self.caller.call_async(ChangeState, '/evs_lifecycle_node/change_state', request)
        if wait_until(future.done, timeout_s):
            return future.result().success
        assert wait_until(lambda: 'a ROS request failed inside rclpy' in self.log()), self.log()
        return False

    def state(self) -> str:
        response = self.caller.query(GetState, '/evs_lifecycle_node/get_state',
                                     GetState.Request())
        return response.current_state.label

    def publishers(self) -> int:
        return self.caller.node.count_publishers('/labels')

    def answers(self, blue: int) -> set:
        """Label values of the answer to one frame (the node must be active)."""
        self.sent += 1
        return answer(self.player, blue, self.sent)[0]

    def silent(self) -> bool:
        """Frames sent now get no output (and nothing arrives late)."""
        before = self.player.count('labels') + self.player.count('status')
        for _ in range(5):
            self.sent += 1
            self.player.publish(uniform_frame(60), stamp(self.sent))
        time.sleep(QUIET_S)
        return self.player.count('labels') + self.player.count('status') == before

    def log(self) -> str:
        return read_log(self.log_path)

    def close(self) -> int:
        if self.player is not None:
            self.player.close()
            self.caller.close()
            self.player = self.caller = None
        return stop_node(self.process)


@pytest.fixture
def managed(ros_env, tmp_path):
    started = []

    def start(overrides=None) -> ManagedNode:
        started.append(ManagedNode(ros_env, str(tmp_path / 'node.log'), overrides))
        return started[-1]

    yield start
    for node in started:
        node.close()


def test_outputs_only_while_active_and_shutdown_from_active(managed):
    node = managed()
    assert node.state() == 'unconfigured'
    assert node.publishers() == 0, 'no topics before configure'
    assert node.change(Transition.TRANSITION_CONFIGURE) and node.state() == 'inactive'
    assert node.log().count('ready (warm-up') == 1
    assert wait_until(lambda: node.publishers() == 1), 'publishers exist once configured'
    assert node.silent(), 'no output before activate'

    assert node.change(Transition.TRANSITION_ACTIVATE) and node.state() == 'active'
    node.player.wait_for_node(node.process)
    assert node.answers(17) == {1}

    assert node.change(Transition.TRANSITION_DEACTIVATE) and node.state() == 'inactive'
    assert node.silent(), 'no output after deactivate'
    assert node.publishers() == 1, 'the publishers stay while inactive'

    assert node.change(Transition.TRANSITION_ACTIVATE)
    node.player.wait_for_node(node.process)
    assert node.answers(45) == {3}, 'output again after re-activate'

    assert node.change(Transition.TRANSITION_DEACTIVATE)
    assert node.change(Transition.TRANSITION_CLEANUP) and node.state() == 'unconfigured'
    assert 'network released' in node.log()
    assert wait_until(lambda: node.publishers() == 0), 'cleanup destroys the publishers'
    assert node.change(Transition.TRANSITION_CONFIGURE), 'configure again after cleanup'
    assert node.log().count('ready (warm-up') == 2, 'the network was loaded again'
    assert node.change(Transition.TRANSITION_ACTIVATE)
    node.player.wait_for_node(node.process)
    assert node.answers(31) == {2}

    assert node.change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert node.state() == 'finalized', 'a finalized node stays, as rclcpp lifecycle nodes do'
    assert 'shut down (finalized): nothing is published, no network held' in node.log()
    assert wait_until(lambda: node.publishers() == 0)
    assert node.process.poll() is None, node.log()
    assert node.close() == 0, 'SIGINT ends the finalized node with exit code 0'
    assert 'Traceback' not in node.log(), node.log()


def test_configure_with_a_bad_backend_fails_with_the_reason(managed):
    node = managed({'model.backend': 'python:fake_models:no_such_factory'})
    assert node.state() == 'unconfigured'
    assert not node.change(Transition.TRANSITION_CONFIGURE)
    assert node.state() == 'unconfigured'
    reasons = [line for line in node.log().splitlines() if 'configure failed' in line]
    assert len(reasons) == 1 and "has no factory 'no_such_factory'" in reasons[0], node.log()
    assert not node.try_change(Transition.TRANSITION_ACTIVATE), 'cannot activate unconfigured'
    assert node.state() == 'unconfigured' and node.process.poll() is None, node.log()
    assert node.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert node.state() == 'finalized'
    assert node.close() == 0 and 'Traceback' not in node.log(), node.log()
