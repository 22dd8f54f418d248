"""What differs between the rclpy of Humble, Jazzy and Kilted, in one place.

evs_ros uses only rclpy API that all three distributions have (``make lint`` compiles the code
with Python 3.10, Humble's). Where the obvious way needs a private member or differs between
them, a function here does it with public API, and ``test/test_ros_compat.py`` runs it on every
wheel set the suite runs on.
"""

from rcl_interfaces.msg import ParameterDescriptor


def parameter_override(node, name: str):
    """Return the value the command line or a params file gives parameter ``name``, or None.

    rclpy keeps the overrides in a private member (``_parameter_overrides``); this reads one
    through public API instead: ``name`` is declared dynamically typed (which takes an override
    of any type), read and undeclared again. ``name`` must not be declared yet. Set-parameters
    callbacks see the declaration, as they see every declaration.
    """
    descriptor = ParameterDescriptor(name=name, dynamic_typing=True)
    value = node.declare_parameter(name, None, descriptor).value
    node.undeclare_parameter(name)
    return value


def spin_once(executor, logger, timeout_sec: float) -> None:
    """Spin ``executor`` once, surviving an exception raised inside rclpy.

    The rclpy of Humble and Jazzy raises out of the lifecycle ``change_state`` service when a
    transition is not available from the current state (e.g. ``ros2 lifecycle set NODE
    activate`` on an unconfigured node), which would end the process; Kilted's answers
    ``success: false``. Our own callbacks catch their errors, so what reaches here comes from
    rclpy: it is logged in one line and the node goes on (that request stays unanswered).
    """
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except Exception as error:  # noqa: B902 - rclpy's own callback failed, see above
        logger.error(f'a ROS request failed inside rclpy and was dropped: {error}'.splitlines()[0])


def add_pre_set_parameters_callback(node, callback) -> bool:
    """Register ``callback`` to rewrite parameters before rclpy checks their types.

    Pre-set callbacks exist from Iron on (Jazzy, Kilted): there an integer given for a float
    parameter can be made a float before rclpy's type check refuses it. Humble has none: returns
    False and registers nothing (such a value is then refused, give ``1.0``).
    """
    add = getattr(node, 'add_pre_set_parameters_callback', None)
    if add is None:
        return False
    add(callback)
    return True
