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
