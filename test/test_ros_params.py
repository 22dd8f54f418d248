"""Parameters of the installed evs_node over its parameter services (what `ros2 param` calls).

Descriptors with ranges, run-time operating point changes that act on the next frame, and bad
values rejected with a reason while nothing changes.
"""

import math

import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import (DescribeParameters, GetParameters, ListParameters,
                                SetParameters)
from rclpy.parameter import Parameter

from evs_ros.config import EvsConfig, to_flat
from node_harness import stamp, uniform_frame


class ParameterClient:
    """Calls ``/<node>/{list,describe,get,set}_parameters`` from a player's rclpy node."""

    SERVICES = {'list': ListParameters, 'describe': DescribeParameters, 'get': GetParameters,
                'set': SetParameters}

    def __init__(self, player, node_name: str = 'evs_node'):
        self.player = player
        self.clients = {kind: player.node.create_client(srv, f'/{node_name}/{kind}_parameters')
                        for kind, srv in self.SERVICES.items()}
        for client in self.clients.values():
            assert client.wait_for_service(timeout_sec=20.0), client.srv_name

    def call(self, kind: str, **fields):
        request = self.SERVICES[kind].Request(**fields)
        future = self.clients[kind].call_async(request)
        assert self.player.wait_for(future.done, 20.0), f'{kind}_parameters timed out'
        return future.result()

    def describe(self, names):
        return {d.name: d for d in self.call('describe', names=list(names)).descriptors}

    def get(self, *names):
        values = self.call('get', names=list(names)).values
        return [Parameter.from_parameter_msg(_named(n, v)).value for n, v in zip(names, values)]

    def set(self, **values):
        """Set ``name=value`` pairs (dots written as ``__``) atomically one by one."""
        params = [Parameter(name.replace('__', '.'), value=value).to_parameter_msg()
                  for name, value in values.items()]
        return self.call('set', parameters=params).results


def _named(name, value):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    return ParameterMsg(name=name, value=value)


@pytest.fixture
def node(harness):
    def start(overrides=None):
        started = harness(overrides, topics=('labels', 'status'))
        return started, ParameterClient(started.player)
    return start


def play(harness, first: int, count: int, blue: int = 40):
    """Publish frames ``first .. first+count-1`` one at a time; return their status messages."""
    for index in range(first, first + count):
        assert harness.send_and_wait(uniform_frame(blue), stamp(index)), harness.log()
    assert harness.player.wait_for(lambda: harness.player.count('status') >= first + count, 10)
    return harness.player.messages('status')[first:first + count]


def test_every_setting_is_declared_with_a_descriptor_and_range(node):
    harness, params = node()
    names = set(params.call('list').result.names)
    expected = {n for n in to_flat(EvsConfig()) if n != 'operating_point.name'}
    assert expected | {'operating_point.preset', 'cameras'} <= names
    described = params.describe(sorted(expected | {'operating_point.preset', 'cameras'}))
    assert all(d.description for d in described.values())
    interval = described['operating_point.keyframe_interval']
    assert interval.type == ParameterType.PARAMETER_INTEGER
    assert (interval.integer_range[0].from_value, interval.integer_range[0].to_value) == (1, 1000)
    downscale = described['operating_point.downscale'].floating_point_range[0]
    assert (downscale.from_value, downscale.to_value) == (0.1, 1.0)
    assert 'EVS14' in described['operating_point.preset'].additional_constraints
    read_only = {n for n, d in described.items() if d.read_only}
    assert {'model.backend', 'model.device', 'runtime.input_queue_size', 'cameras',
            'publish.input_qos_reliability'} <= read_only
    assert not {'flow.scale', 'iam.dilation_px', 'publish.overlay_alpha'} & read_only
    assert 'operating_point.keyframe_interval' not in read_only
    assert params.get('operating_point.preset', 'operating_point.keyframe_interval') == \
        ['EVS05', 3]


def test_preset_change_takes_effect_on_the_next_frame(node):
    harness, params = node()
    before = play(harness, 0, 6)
    assert {s.operating_point for s in before} == {'EVS05'}
    assert [s.keyframe_requested for s in before] == [True, False, False, True, False, False]
    assert all(r.successful for r in params.set(operating_point__preset='EVS10'))
    after = play(harness, 6, 12)
    assert {s.operating_point for s in after} == {'EVS10'}
    assert [s.keyframe_requested for s in after].count(True) == 1  # S=10 now (EVS05 would give 4)
    assert harness.player.wait_for(
        lambda: params.get('operating_point.keyframe_interval') == [10], 10), \
        'the preset fields are written back for `ros2 param get`'
    assert harness.wait_log('operating point -> ')


def test_warp_and_refine_switch_on_and_off_mid_stream(node, tmp_path):
    from evs_ros.models.checkpoint import save_checkpoint
    from evs_ros.models.refiner import RefinerNet
    refiner = str(tmp_path / 'refiner.pt')
    config = {'num_classes': 19, 'feature_channels': 0, 'width_mult': 0.25}
    save_checkpoint(refiner, 'refiner', config, RefinerNet(**config))
    harness, params = node({'model.refiner': refiner, 'operating_point.preset': 'EVS10'})
    warped = play(harness, 0, 3)[1:]
    assert all(s.flow_ms > 0 and not s.refined for s in warped)
    assert all(r.successful for r in params.set(operating_point__warp=False))
    held = play(harness, 3, 3)
    assert all(s.flow_ms == 0 and math.isnan(s.inconsistent_fraction) for s in held)
    assert [s.frames_since_keyframe for s in held] == [3, 4, 5]
    assert {s.operating_point for s in held} == {'EVS10+custom'}
    refused = params.set(operating_point__refine=True)[0]
    assert not refused.successful and 'needs operating_point.warp=True' in refused.reason
    assert all(r.successful for r in params.set(operating_point__warp=True))
    rewarped = play(harness, 6, 3)[1:]  # the first frame after W on has no previous gray yet
    assert all(s.flow_ms > 0 for s in rewarped)
    assert all(r.successful for r in params.set(operating_point__refine=True))
    refined = play(harness, 9, 3)
    assert all(s.refined and s.refine_ms > 0 for s in refined if not s.keyframe_requested)
    assert any(not s.keyframe_requested for s in refined)
    assert all(r.successful for r in params.set(operating_point__refine=False))
    assert not any(s.refined for s in play(harness, 12, 2))


def test_flow_and_iam_settings_change_at_run_time(node):
    harness, params = node()
    play(harness, 0, 2)
    results = params.set(flow__scale=0.5, iam__backward_flow='dis', publish__overlay_alpha=0.8)
    assert all(r.successful for r in results)
    assert params.get('flow.scale', 'iam.backward_flow') == [0.5, 'dis']
    statuses = play(harness, 2, 4)
    assert not any(s.keyframe_requested for s in statuses[:1]) and len(statuses) == 4
    assert all(0.0 <= s.inconsistent_fraction <= 1.0 for s in statuses if not s.keyframe_requested)


BAD_CHANGES = [
    ({'operating_point__preset': 'EVS99'}, "preset='EVS99': must be one of EVS01"),
    ({'operating_point__keyframe_interval': 0}, 'keyframe_interval'),
    ({'operating_point__downscale': 1.5}, 'downscale'),
    ({'flow__scale': 0.0}, 'flow.scale'),
    ({'model__backend': 'python:other:make'}, 'read-only'),
    ({'cameras': ['front']}, 'read-only'),
    ({'flow__method': 'magic'}, "flow.method='magic': must be one of dis, farneback"),
    ({'runtime__flow_threads': -1}, 'read-only'),
]


def test_bad_values_are_rejected_with_a_reason_and_nothing_changes(node):
    harness, params = node()
    names = ['operating_point.preset', 'operating_point.keyframe_interval',
             'operating_point.downscale', 'flow.scale', 'model.backend', 'cameras',
             'flow.method']
    before = params.get(*names)
    for change, reason in BAD_CHANGES:
        results = params.set(**change)
        assert not results[0].successful and reason in results[0].reason, (change, results)
    assert params.get(*names) == before
    statuses = play(harness, 0, 4)
    assert {s.operating_point for s in statuses} == {'EVS05'}
    assert [s.keyframe_requested for s in statuses] == [True, False, False, True]


def test_an_integer_for_a_float_parameter_is_taken_as_the_float(node):
    from rclpy.node import Node
    harness, params = node()
    results = params.set(flow__scale=1, operating_point__downscale=1)  # `ros2 param set ... 1`
    if not hasattr(Node, 'add_pre_set_parameters_callback'):  # Humble: README says give 1.0
        assert not results[0].successful and 'Wrong parameter type' in results[0].reason
        return
    assert all(result.successful for result in results), results
    values = params.call('get', names=['flow.scale', 'operating_point.downscale']).values
    assert [(v.type, v.double_value) for v in values] == \
        [(ParameterType.PARAMETER_DOUBLE, 1.0)] * 2
    results = params.set(flow__scale=2)
    assert not results[0].successful and 'flow.scale' in results[0].reason, 'ranges still hold'
    results = params.set(operating_point__keyframe_interval=3.0)
    assert not results[0].successful, 'a float for an integer parameter is still refused'
