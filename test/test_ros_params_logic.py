"""Parameter handling of the node without a ROS graph: descriptors, run-time changes, echoes.

``rclpy.parameter.Parameter`` and the rcl_interfaces messages are plain objects: no
``rclpy.init()``, no DDS. The same functions run inside the node's set-parameters callback.
"""

import pytest
from rclpy.parameter import Parameter

from evs_ros.config import OPERATING_POINTS, PARAMETER_INFO, EvsConfig, config_from_flat
from evs_ros.ros import params


def changes(**values):
    return [Parameter(name.replace('__', '.'), value=value) for name, value in values.items()]


def test_descriptors_carry_ranges_choices_and_read_only():
    scale = params.descriptor('flow.scale', 1.0)
    assert scale.floating_point_range[0].from_value == 0.05
    assert scale.floating_point_range[0].to_value == 1.0 and not scale.read_only
    interval = params.descriptor('operating_point.keyframe_interval', 3)
    assert (interval.integer_range[0].from_value, interval.integer_range[0].to_value) == (1, 1000)
    method = params.descriptor('flow.method', 'dis')
    assert method.additional_constraints == 'one of dis, farneback'
    backend = params.descriptor('model.backend', 'icnet:default')
    assert backend.read_only and 'restart the node' in backend.description
    assert all(params.descriptor(name, 0.0).description for name in PARAMETER_INFO)


def test_a_preset_replaces_the_operating_point_and_is_echoed_in_canonical_form():
    config, echo = params.apply_changes(EvsConfig(), changes(operating_point__preset='evs3'))
    assert config.operating_point == OPERATING_POINTS['EVS03']
    assert echo['operating_point.preset'] == 'EVS03'
    assert echo['operating_point.keyframe_interval'] == 2


def test_explicit_fields_apply_over_a_preset_and_name_it_custom():
    config, echo = params.apply_changes(EvsConfig(), changes(
        operating_point__preset='EVS07', operating_point__keyframe_interval=4))
    assert config.operating_point.keyframe_interval == 4
    assert config.operating_point.name == 'EVS07+custom'
    assert 'operating_point.keyframe_interval' not in echo
    assert 'operating_point.preset' not in echo  # already canonical
    back, _ = params.apply_changes(config, changes(operating_point__keyframe_interval=5))
    assert back.operating_point.name == 'EVS07'


@pytest.mark.parametrize('bad, message', [
    ({'operating_point__preset': 'EVS99'}, "preset='EVS99': must be one of"),
    ({'flow__scale': 0.0}, 'flow.scale=0.0: must be in [0.05, 1.0]'),
    ({'operating_point__warp': False, 'operating_point__refine': True}, 'needs operating_point'),
    ({'model__backend': 'onnx:x.onnx'}, 'model.backend is read at start-up'),
    ({'runtime__flow_threads': 2}, 'runtime.flow_threads is read at start-up'),
    ({'cameras': ['a']}, 'cameras is read at start-up'),
    ({'class_names': ['a']}, 'class_names is read at start-up'),
])
def test_bad_changes_are_refused_with_one_line(bad, message):
    with pytest.raises(ValueError) as error:
        params.apply_changes(EvsConfig(), changes(**bad))
    assert message in str(error.value) and '\n' not in str(error.value)


def test_config_from_parameters_names_a_custom_operating_point():
    base = config_from_flat({'operating_point.preset': 'EVS10'})
    config = params.config_from_parameters(changes(operating_point__downscale=0.5,
                                                   flow__scale=0.5), base)
    assert config.operating_point.name == 'EVS10+custom' and config.flow.scale == 0.5


def test_camera_names_are_stripped_and_unique():
    assert params.check_camera_names(['/front', 'rear/']) == ['front', 'rear']
    assert params.check_camera_names([]) == ['']
    with pytest.raises(ValueError, match='must not repeat'):
        params.check_camera_names(['front', '/front'])


def test_results_carry_the_reason():
    assert params.result().successful
    refused = params.result(ValueError('flow.scale=0.0: must be in [0.05, 1.0]'))
    assert not refused.successful and refused.reason.startswith('flow.scale')
