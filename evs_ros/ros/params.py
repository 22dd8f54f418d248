"""ROS parameters <-> :class:`evs_ros.config.EvsConfig`, in one place.

Every field of the config is a dotted ROS parameter (``flow.scale``, ``operating_point.refine``)
declared with a descriptor (description, range) from :data:`evs_ros.config.PARAMETER_INFO`.
``operating_point.preset`` selects a paper Table 2 operating point; its D/S/W/R fields are declared
with the preset's values as defaults, so a params file may name a preset and override single
fields. Changes at run time are validated by building a new config: a bad value is rejected with
the reason and nothing changes (validate-and-apply inside the set-parameters callback, which
works on Humble too).
"""

from dataclasses import replace
from typing import Dict, Iterable, List, Tuple

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.parameter import Parameter

from evs_ros.config import (BASELINE, EvsConfig, OPERATING_POINTS, PARAMETER_INFO,
                            RESTART_REQUIRED, config_from_flat, operating_point, to_flat)

PRESET = 'operating_point.preset'
CAMERAS = 'cameras'
PRESET_NAMES = tuple(OPERATING_POINTS) + (BASELINE.name,)
OP_FIELDS = ('downscale', 'keyframe_interval', 'warp', 'refine', 'adaptive',
             'adaptive_threshold', 'max_keyframe_interval')


def _descriptor(name: str, value) -> ParameterDescriptor:
    description, value_range = PARAMETER_INFO.get(name, ('', None))
    descriptor = ParameterDescriptor(name=name, description=description)
    if value_range is not None and isinstance(value, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(value_range[0]), to_value=float(value_range[1]), step=0.0)]
    elif value_range is not None and isinstance(value, int) and not isinstance(value, bool):
        descriptor.integer_range = [IntegerRange(
            from_value=int(value_range[0]), to_value=int(value_range[1]), step=1)]
    if name in RESTART_REQUIRED:
        descriptor.description += ' (read at start-up; restart the node to change)'
        descriptor.read_only = True
    return descriptor


def declare_parameters(node) -> EvsConfig:
    """Declare every parameter on ``node`` and return the validated start-up config.

    Raises:
        ValueError: a parameter override is invalid (the message names the parameter).
    """
    node.declare_parameter(CAMERAS, [''], ParameterDescriptor(
        name=CAMERAS, description='camera namespaces served by this node ("" = the node\'s own '
        'image topic); each gets <camera>/image in and its own outputs (read at start-up)',
        read_only=True))
    preset_name = node.declare_parameter(PRESET, 'EVS05', ParameterDescriptor(
        name=PRESET, description='paper Table 2 operating point EVS01..EVS14, ADAPTIVE or '
        'PERFRAME', additional_constraints='one of: ' + ', '.join(PRESET_NAMES))).value
    base = replace(EvsConfig(), operating_point=operating_point(preset_name))
    for name, default in to_flat(base).items():
        if name == 'operating_point.name':
            continue
        node.declare_parameter(name, default, _descriptor(name, default))
    return config_from_parameters(node.get_parameters(list(_config_names(base))), base)


def _config_names(config: EvsConfig) -> Iterable[str]:
    return (name for name in to_flat(config) if name != 'operating_point.name')


def config_from_parameters(params: Iterable[Parameter], base: EvsConfig) -> EvsConfig:
    """Build a config from rclpy parameters over ``base``, naming a custom operating point."""
    values = {p.name: p.value for p in params if p.name in PARAMETER_INFO}
    config = config_from_flat(values, base)
    return _name_operating_point(config, base.operating_point.name)


def _name_operating_point(config: EvsConfig, preset_name: str) -> EvsConfig:
    op = config.operating_point
    preset = operating_point(preset_name)
    fields_equal = all(getattr(op, f) == getattr(preset, f) for f in OP_FIELDS)
    name = preset.name if fields_equal else f'{preset.name}+custom'
    return replace(config, operating_point=replace(op, name=name))


def camera_names(node) -> List[str]:
    """The camera namespaces, validated (unique, no leading slash needed)."""
    cameras = [str(c).strip('/') for c in node.get_parameter(CAMERAS).value] or ['']
    if len(set(cameras)) != len(cameras):
        raise ValueError(f'parameter {CAMERAS} has duplicate entries: {cameras}')
    return cameras


def apply_changes(current: EvsConfig, changes: Iterable[Parameter]
                  ) -> Tuple[EvsConfig, Dict[str, object]]:
    """Validate run-time parameter changes against the current config.

    A new preset replaces the whole operating point; explicit fields then apply on top.

    Returns:
        (new config, {parameter name: value} of operating-point fields the preset changed, to be
        written back so that ``ros2 param get`` shows what runs).

    Raises:
        ValueError: with the reason, when any change is invalid; nothing is applied then.
    """
    changes = list(changes)
    for param in changes:
        if param.name in RESTART_REQUIRED:
            raise ValueError(f'{param.name} is read at start-up; restart the node to change it')
    preset = next((p.value for p in changes if p.name == PRESET), None)
    base, preset_name = current, current.operating_point.name.split('+')[0]
    echo = {}
    if preset is not None:
        op = operating_point(str(preset))
        base, preset_name = replace(current, operating_point=op), op.name
        echo = {f'operating_point.{f}': getattr(op, f) for f in OP_FIELDS}
    explicit = {p.name: p.value for p in changes if p.name in PARAMETER_INFO}
    config = _name_operating_point(config_from_flat(explicit, base), preset_name)
    for name in explicit:
        echo.pop(name, None)
    return config, echo


def result(error: Exception = None) -> SetParametersResult:
    """A set-parameters answer: successful, or rejected with the error's message."""
    if error is None:
        return SetParametersResult(successful=True)
    return SetParametersResult(successful=False, reason=str(error))
