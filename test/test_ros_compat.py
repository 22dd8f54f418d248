"""evs_ros.ros.compat on the rclpy of the wheel set this suite runs on (Kilted or Jazzy).

CI runs the whole suite once per distribution, so each function here is checked on both.
"""

import pytest
import rclpy
from rclpy.context import Context

from evs_ros.ros import compat, params


@pytest.fixture
def make_node(ros_env, tmp_path):
    """Return ``make(*ros_args)``: an rclpy node whose context got ``--ros-args ros_args``."""
    made = []

    def make(*ros_args):
        context = Context()
        rclpy.init(args=['evs_test', '--ros-args', *ros_args], context=context)
        node = rclpy.create_node('evs_compat_test', context=context,
                                 start_parameter_services=False)
        made.append((node, context))
        return node

    yield make
    for node, context in made:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_override_from_the_command_line_is_read_whatever_its_type(make_node):
    node = make_node('-p', 'flow.scale:=fast', '-p', 'operating_point.preset:=evs3')
    assert compat.parameter_override(node, 'flow.scale') == 'fast'
    assert compat.parameter_override(node, 'operating_point.preset') == 'evs3'
    assert not node.has_parameter('flow.scale')  # undeclared again: free to declare typed
    assert node.declare_parameter('flow.scale', 0.5, ignore_override=True).value == 0.5


def test_override_from_a_params_file_and_none_without_one(make_node, tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    flow:\n      scale: 2\n')
    node = make_node('--params-file', str(path))
    assert compat.parameter_override(node, 'flow.scale') == 2
    assert compat.parameter_override(node, 'flow.method') is None
    assert not node.has_parameter('flow.method')


def test_a_bad_override_is_refused_with_one_line_naming_the_parameter(make_node):
    node = make_node('-p', 'flow.scale:=fast')
    with pytest.raises(ValueError) as error:
        params.declare(node, 'flow.scale', 1.0, params.descriptor('flow.scale', 1.0))
    assert str(error.value).startswith('flow.scale') and '\n' not in str(error.value)


def test_integers_for_float_parameters_become_floats_where_rclpy_allows(make_node):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    node = make_node()
    node.declare_parameter('flow.scale', 0.5)
    node.declare_parameter('flow.patch_size', 8)
    registered = params.accept_integers_for_floats(node)
    assert registered == hasattr(Node, 'add_pre_set_parameters_callback')  # Iron and later
    result = node.set_parameters([Parameter('flow.scale', value=1)])[0]
    if not registered:  # Humble: rclpy refuses the integer before any callback sees it
        assert not result.successful
        return
    assert result.successful, result.reason
    assert node.get_parameter('flow.scale').type_ == Parameter.Type.DOUBLE
    assert node.get_parameter('flow.scale').value == 1.0
    assert not node.set_parameters([Parameter('flow.patch_size', value=3.0)])[0].successful
