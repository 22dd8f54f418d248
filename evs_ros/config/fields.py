"""Settings with their metadata: the machinery every config section is made of.

:func:`setting` attaches a :class:`ParameterInfo` (help, range, allowed values, read at start-up)
to a dataclass field; :func:`validate_fields` checks a section against it, so the ROS parameter
descriptors, the CLI help and the validation all read one place.
"""

from dataclasses import field, fields
from typing import NamedTuple, Optional, Tuple

DIS_PRESETS = ('ultrafast', 'fast', 'medium', 'custom')
FLOW_METHODS = ('dis', 'farneback')
DEVICES = ('auto', 'cpu', 'cuda')
ENGINES = ('auto', 'torch', 'openvino', 'onnxruntime', 'tensorrt')
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16', 'int8')
QOS_RELIABILITY = ('best_effort', 'reliable')
UPSAMPLING = ('nearest', 'bilinear')


class ParameterInfo(NamedTuple):
    """What a user needs to know about one setting.

    The ROS parameter descriptor, the CLI help and validation all read it from the field's metadata
    (one place).
    """

    help: str
    range: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None
    restart: bool = False
    """Read at start-up only (rebuilds models, threads or subscriptions)."""


def setting(default, help: str, range: Optional[Tuple[float, float]] = None,
            choices: Optional[Tuple[str, ...]] = None, restart: bool = False):
    """Return a config field with its :class:`ParameterInfo` (see :func:`validate_fields`)."""
    return field(default=default, metadata={'info': ParameterInfo(help, range, choices, restart)})


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def allowed_text(info: ParameterInfo) -> str:
    """'one of a, b' or 'in [lo, hi]' for messages; '' when anything goes."""
    if info.choices:
        return 'one of ' + ', '.join(info.choices)
    if info.range:
        return f'in [{info.range[0]}, {info.range[1]}]'
    return ''


def validate_fields(section: str, obj) -> None:
    """Check every field of ``obj`` against its range and choices.

    ValueError names the setting and what is allowed (``runtime.flow_threads=-1: must be in [1,
    64]``).
    """
    for item in fields(obj):
        info = item.metadata.get('info')
        value = getattr(obj, item.name)
        if info is None or (info.range is None and info.choices is None):
            continue
        ok = value in info.choices if info.choices else info.range[0] <= value <= info.range[1]
        check(ok, f'{section}.{item.name}={value!r}: must be {allowed_text(info)}')
