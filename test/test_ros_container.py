"""Integration.

The installed evs_container over real DDS, called as ros2 component and launch_ros call it
(composition_interfaces LoadNode / ListNodes / UnloadNode).
"""

import os
import signal

import pytest
from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode
from rcl_interfaces.srv import GetParameters

from counting_models import NETWORK_LOG_ENV, networks_built
from evs_ros.testing.player import FramePlayer, stop_node
from ros_clients import (
    ServiceCaller, answer, exit_code, parameter_msg, read_log, start_executable, wait_until,
)

COUNTED = 'python:counting_models:make_model'
SLOW_LOADING = 'python:counting_models:make_slow_loading_model'
NODE_PARAMS = {'model.backend': COUNTED, 'model.refiner': '',
               'publish.qos_reliability': 'reliable',
               'publish.input_qos_reliability': 'reliable', 'publish.qos_depth': 100}
TOPICS = ('labels', 'status')


class Container:
    """A running container process plus a service caller in the test's domain."""

    def __init__(self, env: dict, tmp_path, executable: str = 'evs_container',
                 name: str = 'evs_container'):
        self.network_log = str(tmp_path / 'networks.log')
        self.log_path = str(tmp_path / 'container.log')
        args = [] if name == 'evs_container' else ['-r', f'__node:={name}']
        self.process = start_executable(executable, dict(env, **{
            NETWORK_LOG_ENV: self.network_log}), args, self.log_path)
        self.domain_id = int(env['ROS_DOMAIN_ID'])
        self.caller = ServiceCaller(self.domain_id)
        self.services = f'/{name}/_container/'
        self.players = []

    def request(self, node_name: str, namespace: str = '', parameters=None, remaps=(),
                plugin: str = 'evs_ros::EvsNode', package: str = 'evs_ros'):
        values = dict(NODE_PARAMS, **(parameters or {}))
        return LoadNode.Request(
            package_name=package, plugin_name=plugin, node_name=node_name,
            node_namespace=namespace, remap_rules=list(remaps),
            parameters=[parameter_msg(name, value) for name, value in values.items()])

    def load(self, *args, **kwargs):
        return self.caller.call(LoadNode, self.services + 'load_node',
                                self.request(*args, **kwargs))

    def unload(self, unique_id: int):
        return self.caller.call(UnloadNode, self.services + 'unload_node',
                                UnloadNode.Request(unique_id=unique_id))

    def listed(self):
        response = self.caller.call(ListNodes, self.services + 'list_nodes', ListNodes.Request())
        return list(zip(response.unique_ids, response.full_node_names))

    def player(self, prefix: str) -> FramePlayer:
        player = FramePlayer(self.domain_id, prefix=prefix, reliable=True, topics=TOPICS)
        self.players.append(player)
        player.wait_for_node(self.process)
        return player

    def log(self) -> str:
        return read_log(self.log_path)

    def close(self) -> int:
        """Stop the players, the caller and the container (SIGINT); returns its exit code."""
        for player in self.players:
            player.close()
        self.players = []
        if self.caller is not None:
            self.caller.close()
            self.caller = None
        return stop_node(self.process)


@pytest.fixture
def container(ros_env, tmp_path):
    started = []

    def start(**kwargs) -> Container:
        started.append(Container(ros_env, tmp_path, **kwargs))
        return started[-1]

    yield start
    for running in started:
        running.close()


def test_two_nodes_share_one_network_and_unload(container):
    box = container()
    first = box.load('cam1', parameters={'operating_point.preset': 'evs03'},
                     remaps=['image:=/cam1/image', 'labels:=/cam1/labels',
                             'status:=/cam1/status'])
    second = box.load('evs', 'front', parameters={'operating_point.preset': 'EVS07'})
    assert (first.success, first.full_node_name, first.unique_id) == (True, '/cam1', 1), first
    assert (second.success, second.full_node_name, second.unique_id) == (True, '/front/evs', 2)
    assert box.listed() == [(1, '/cam1'), (2, '/front/evs')]
    cam1, front = box.player('cam1/'), box.player('front/')
    for index in range(3):  # each node labels its own input: class = blue // 14
        labels, status = answer(cam1, 17, index)
        assert labels == {1} and status.operating_point == 'EVS03'
        labels, status = answer(front, 45, index)
        assert labels == {3} and status.operating_point == 'EVS07'
    assert networks_built(box.network_log) == ['make_model'], 'one network for both nodes'
    assert 'networks in memory: 1' in box.log()

    assert box.unload(1).success
    assert box.listed() == [(2, '/front/evs')]
    assert wait_until(lambda: box.caller.node.count_publishers('/cam1/labels') == 0)
    assert answer(front, 45, 3)[0] == {3}, 'the other node keeps answering'
    again = box.unload(1)
    assert not again.success and 'unique id 1' in again.error_message
    assert box.unload(2).success and box.listed() == []
    assert box.load('later').success
    assert networks_built(box.network_log) == ['make_model'] * 2, \
        'the network was freed with its last user, so a new node loads it again'
    code = box.close()
    assert code == 0 and 'Traceback' not in box.log(), box.log()


REFUSALS = [  # (request changes, log level, part of the reason)
    ({'plugin': 'evs_ros::NoSuchNode'}, 0, "no component 'evs_ros::NoSuchNode'"),
    ({'package': 'no_such_package'}, 0, "'no_such_package' registers no components"),
    ({'parameters': {'flow.scale': 'fast'}}, 0, "flow.scale='fast'"),
    ({'parameters': {'model.backend': 'python:counting_models:nothing'}}, 0,
     "has no factory 'nothing'"),
    ({}, 7, 'log_level=7'),
    ({'node_name': 'bad name'}, 0, "node_name='bad name'"),
    ({'namespace': 'front/2d'}, 0, "node_namespace='front/2d'"),
]


def test_refused_loads_answer_the_reason_and_leave_nothing(container):
    box = container()
    assert box.load('kept').success
    for changes, log_level, reason in REFUSALS:
        request = box.request(**dict({'node_name': 'refused'}, **changes))
        request.log_level = log_level
        response = box.caller.call(LoadNode, box.services + 'load_node', request)
        assert not response.success and reason in response.error_message, response
        assert '\n' not in response.error_message
    assert box.listed() == [(1, '/kept')]
    assert wait_until(lambda: '/kept' in box.caller.node_names())
    assert '/refused' not in box.caller.node_names()
    assert networks_built(box.network_log) == ['make_model']
    duplicate = box.load('kept')
    assert not duplicate.success and 'already loaded' in duplicate.error_message
    assert box.load('refused', parameters={'operating_point.preset': 'EVS09'}).success
    assert box.listed() == [(1, '/kept'), (2, '/refused')]
    assert box.close() == 0, box.log()


def test_multi_threaded_container_serves_frames_while_loading(container):
    from lifecycle_msgs.srv import GetState
    box = container(executable='evs_container_mt', name='evs_mt')
    assert box.load('fast').success
    player = box.player('')
    slow = box.caller.call_async(LoadNode, box.services + 'load_node',
                                 box.request('slow', 'other',
                                             {'model.backend': SLOW_LOADING}))
    answered_while_loading = 0
    for index in range(40):
        answer(player, 3, index)
        answered_while_loading += not slow.done()
        if slow.done():
            break
    assert answered_while_loading >= 3, 'frames stalled while a node was loading'
    assert wait_until(slow.done, 20) and slow.result().success, slow.result()
    managed = box.load('managed', plugin='evs_ros::EvsLifecycleNode')
    assert managed.success and managed.unique_id == 3
    state = box.caller.call(GetState, '/managed/get_state', GetState.Request())
    assert state.current_state.label == 'unconfigured'
    os.killpg(box.process.pid, signal.SIGTERM)
    assert exit_code(box.process) == 0 and 'Traceback' not in box.log(), box.log()


def launch_values(**changes):
    """Return the launch file's arguments as launch gives them to load_request (strings)."""
    values = {'namespace': 'front', 'image': '/cam/image_raw', 'image_transport': 'raw',
              'params_file': '', 'operating_point': 'evs9', 'log_level': 'info', 'rviz': 'false',
              'container': '/evs_container'}
    values.update(changes)
    return values


def test_the_launch_loader_loads_into_a_container_and_fails_in_one_line(container, tmp_path):
    import asyncio
    import yaml
    from evs_ros.ros import launch_support
    box = container()
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'model': {'backend': COUNTED, 'refiner': ''},
        'publish': {'qos_reliability': 'reliable', 'qos_depth': 100}}}}))
    request = launch_support.load_request(launch_values(params_file=str(params_file)), 'evs')
    loaded = asyncio.run(launch_support.load_into_container('evs_container', request))
    assert loaded == '/front/evs' and box.listed() == [(1, '/front/evs')]
    preset = box.caller.call(GetParameters, '/front/evs/get_parameters',
                             GetParameters.Request(names=['operating_point.preset']))
    assert preset.values[0].string_value == 'EVS09'
    assert wait_until(lambda: box.caller.node.count_subscribers('/cam/image_raw') == 1)

    bad = launch_support.load_request(launch_values(params_file=str(params_file),
                                                    operating_point='EVS99'), 'other')
    with pytest.raises(RuntimeError) as refused:
        asyncio.run(launch_support.load_into_container('/evs_container', bad))
    assert str(refused.value).startswith('container /evs_container refused to load '
                                         'evs_ros::EvsNode: operating_point.preset')
    assert '\n' not in str(refused.value)
    with pytest.raises(RuntimeError, match=r'container:=/nowhere: no component container offers '
                       r'/nowhere/_container/load_node \(waited 1 s'):
        asyncio.run(launch_support.load_into_container('/nowhere', request, wait_s=1.0))
    assert box.listed() == [(1, '/front/evs')]
    assert box.close() == 0, box.log()
