"""ROS parameters <-> :class:`evs_ros.config.EvsConfig`, in one place.

Every field of the config is a dotted ROS parameter (``flow.scale``, ``operating_point.refine``)
declared with a descriptor (description, range, allowed values, read-only) built from the field's
:class:`~evs_ros.config.ParameterInfo`. ``operating_point.preset`` selects a paper Table 2
operating point; its D/S/W/R fields are declared with the preset's values as defaults, so a
params file may name a preset and override single fields. Changes at run time are validated by
building a new config: a bad value is rejected with one line naming the parameter and what is
allowed, and nothing changes (validate-and-apply inside the set-parameters callback, which works
on Humble too). Preset names are canonicalised (``evs3`` -> ``EVS03``) and written back.

Everything here except :func:`declare_parameters` works on plain ``rclpy.parameter.Parameter``
objects and is tested without a running ROS graph.
"""

from dataclasses import replace
from typing import Dict, Iterable, List, Tuple

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from evs_ros.config import (
    OPERATING_POINT_FIELDS, PARAMETER_INFO, PRESET_NAMES, RESTART_REQUIRED, EvsConfig,
    allowed_text, config_from_flat, operating_point, to_flat,
)
from evs_ros.ros import compat

PRESET = 'operating_point.preset'
CAMERAS = 'cameras'
CLASS_NAMES = 'class_names'


def descriptor(name: str, value) -> ParameterDescriptor:
    """Return the descriptor of setting ``name`` (default ``value``): help, values, range."""
    info = PARAMETER_INFO[name]
    descriptor = ParameterDescriptor(name=name, description=info.help)
    if info.range is not None and isinstance(value, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(info.range[0]), to_value=float(info.range[1]), step=0.0)]
    elif info.range is not None and isinstance(value, int) and not isinstance(value, bool):
        descriptor.integer_range = [IntegerRange(
            from_value=int(info.range[0]), to_value=int(info.range[1]), step=1)]
    if info.choices:
        descriptor.additional_constraints = allowed_text(info)
    if info.restart:
        descriptor.description += ' (read at start-up; restart the node to change)'
        descriptor.read_only = True
    return descriptor


def preset_descriptor() -> ParameterDescriptor:
    """Descriptor of ``operating_point.preset``."""
    return ParameterDescriptor(
        name=PRESET, description='paper Table 2 operating point EVS01..EVS14, ADAPTIVE or '
        'PERFRAME (case-insensitive; EVS5 = EVS05)',
        additional_constraints='one of: ' + ', '.join(PRESET_NAMES))


def declare_parameters(node) -> EvsConfig:
    """Declare every parameter on ``node`` and return the validated start-up config.

    Raises:
        ValueError: a parameter value is invalid (one line naming it and what is allowed).
    """
    node.declare_parameter(CAMERAS, [''], ParameterDescriptor(
        name=CAMERAS, description='camera namespaces served by this node ("" = the node\'s own '
        'image topic); each gets <camera>/image in and its own outputs (read at start-up)',
        read_only=True))
    preset_name = declare(node, PRESET, 'EVS05', preset_descriptor())
    base = replace(EvsConfig(), operating_point=operating_point(str(preset_name)))
    for name, default in to_flat(base).items():
        if name != 'operating_point.name':
            declare(node, name, default, descriptor(name, default))
    return config_from_parameters(node.get_parameters(list(config_names())), base)


def declare(node, name: str, default, descriptor_: ParameterDescriptor):
    """Declare one parameter and return its value.

    An override of the wrong type that converts cleanly (``1`` for a float) is converted; anything
    else raises one ValueError line.
    """
    try:
        return node.declare_parameter(name, default, descriptor_).value
    except (InvalidParameterTypeException, InvalidParameterValueException) as error:
        value = _override(node, name, error)
    if name == PRESET:
        return declare(node, name, operating_point(str(value)).name, descriptor_)
    coerced = to_flat(config_from_flat({name: value}))[name]  # raises the one-line reason
    return node.declare_parameter(name, coerced, descriptor_, ignore_override=True).value


def _override(node, name: str, error: Exception):
    """Return the value the command line or params file gave for ``name``."""
    value = compat.parameter_override(node, name)
    if value is None:
        raise ValueError(f'{name}: {error}') from None
    return value


def accept_integers_for_floats(node) -> bool:
    """Take an integer set for a float parameter as the float.

    As in ``ros2 param set /evs_node flow.scale 1``. rclpy checks a new value's type against the
    declared type before any on-set callback runs, so only a pre-set callback can convert it
    (:func:`~evs_ros.ros.compat.add_pre_set_parameters_callback`). Returns False on Humble,
    where such a value is refused (give ``1.0``).
    """
    return compat.add_pre_set_parameters_callback(
        node, lambda parameters: integers_as_floats(node, parameters))


def integers_as_floats(node, parameters: List[Parameter]) -> List[Parameter]:
    """``parameters`` with each integer given for a declared float parameter made a float."""
    converted = []
    for param in parameters:
        if (param.type_ == Parameter.Type.INTEGER and node.has_parameter(param.name)
                and node.get_parameter(param.name).type_ == Parameter.Type.DOUBLE):
            param = Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
        converted.append(param)
    return converted


def config_names() -> Iterable[str]:
    """Names of the parameters that make up the config (the preset's name excluded)."""
    return (name for name in PARAMETER_INFO if name != 'operating_point.name')


def config_from_parameters(params: Iterable[Parameter], base: EvsConfig) -> EvsConfig:
    """Build a config from rclpy parameters over ``base``, naming a custom operating point."""
    values = {p.name: p.value for p in params if p.name in PARAMETER_INFO}
    config = config_from_flat(values, base)
    return _name_operating_point(config, base.operating_point.name)


def _name_operating_point(config: EvsConfig, preset_name: str) -> EvsConfig:
    preset = operating_point(preset_name)
    return replace(config, operating_point=config.operating_point.named_after(preset))


def camera_names(node) -> List[str]:
    """Return the camera namespaces, validated (unique, no leading slash needed)."""
    return check_camera_names(node.get_parameter(CAMERAS).value)


def check_camera_names(values) -> List[str]:
    """Strip slashes; ValueError on duplicates. An empty list means the node's own topics."""
    cameras = [str(c).strip('/') for c in values] or ['']
    if len(set(cameras)) != len(cameras):
        raise ValueError(f'{CAMERAS}={list(values)}: must not repeat a camera')
    return cameras


def apply_changes(current: EvsConfig, changes: Iterable[Parameter]
                  ) -> Tuple[EvsConfig, Dict[str, object]]:
    """Validate run-time parameter changes against the current config.

    A new preset replaces the whole operating point; explicit fields then apply on top.

    Returns:
        (new config, {parameter name: value} to write back so that ``ros2 param get`` shows what
        runs: the canonical preset name and the operating-point fields the preset changed).

    Raises:
        ValueError: one line naming the parameter and what is allowed, when any change is
            invalid; nothing is applied then.
    """
    changes = list(changes)
    for param in changes:
        if param.name in RESTART_REQUIRED or param.name in (CAMERAS, CLASS_NAMES):
            raise ValueError(f'{param.name} is read at start-up; restart the node to change it')
    preset = next((p.value for p in changes if p.name == PRESET), None)
    base, preset_name = current, current.operating_point.preset_name
    echo = {}
    if preset is not None:
        op = operating_point(str(preset))
        base, preset_name = replace(current, operating_point=op), op.name
        echo = {f'operating_point.{f}': getattr(op, f) for f in OPERATING_POINT_FIELDS}
        if preset != op.name:
            echo[PRESET] = op.name
    explicit = {p.name: p.value for p in changes if p.name in PARAMETER_INFO}
    config = _name_operating_point(config_from_flat(explicit, base), preset_name)
    for name in explicit:
        echo.pop(name, None)
    return config, echo


def result(error: Exception = None) -> SetParametersResult:
    """Return a set-parameters answer: successful, or rejected with the error's message."""
    if error is None:
        return SetParametersResult(successful=True)
    return SetParametersResult(successful=False, reason=str(error))
