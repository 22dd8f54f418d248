"""Dotted names (``flow.scale``: the ROS parameter names) and params files <-> the typed config.

The node, every ``evs`` command and the benchmarks build their settings through
:func:`config_from_flat` (``--set``, ``-p``) and :func:`load_yaml` (``--params``, params files).
"""

from dataclasses import asdict, fields, replace
from typing import Any, Dict, Mapping, Optional

from evs_ros.config.fields import allowed_text
from evs_ros.config.sections import PARAMETER_INFO, SECTIONS, EvsConfig, operating_point


def to_flat(config: EvsConfig) -> Dict[str, Any]:
    """Flatten to dotted names: ``{'flow.scale': 1.0, ...}`` (the ROS parameter names)."""
    flat = {}
    for section, values in asdict(config).items():
        for key, value in values.items():
            flat[f'{section}.{key}'] = value
    return flat


def config_from_flat(values: Mapping[str, Any], base: EvsConfig = None) -> EvsConfig:
    """Build a validated config from dotted names over ``base`` (default: all defaults).

    ``operating_point.preset`` (a Table 2 name) is applied first; explicit
    ``operating_point.*`` fields then override it. Unknown names raise ``ValueError``.
    """
    config = base or EvsConfig()
    values = dict(values)
    preset = values.pop('operating_point.preset', None)
    if preset:
        config = replace(config, operating_point=operating_point(preset))
    grouped: Dict[str, Dict[str, Any]] = {}
    for name, value in values.items():
        section, _, key = name.partition('.')
        current = getattr(config, section, None) if section in SECTIONS else None
        if current is None or key not in {f.name for f in fields(current)}:
            raise ValueError(f'unknown setting {name!r}; known: '
                             f'{", ".join(sorted(to_flat(EvsConfig())))}')
        grouped.setdefault(section, {})[key] = _coerce(name, getattr(current, key), value)
    changes = {s: replace(getattr(config, s), **kv) for s, kv in grouped.items()}
    return replace(config, **changes)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Convert YAML/CLI values to the type of ``default`` (1 -> 1.0 for floats, 'on' -> True).

    ValueError naming the setting otherwise.
    """
    kind = type(default)
    try:
        if kind is bool:
            return _to_bool(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
        if kind is int and not isinstance(value, bool) and float(value).is_integer():
            return int(float(value))
        if kind is str and isinstance(value, str):
            return value
    except (TypeError, ValueError):
        pass
    allowed = allowed_text(PARAMETER_INFO[name])
    if kind is str and allowed:
        raise ValueError(f'{name}={value!r}: must be {allowed}')
    raise ValueError(f'{name}={value!r}: must be {_TYPE_NAMES[kind]}'
                     f'{" " + allowed if allowed else ""}')


_TYPE_NAMES = {bool: 'true or false', float: 'a number', int: 'an integer', str: 'a string'}
TRUE_WORDS, FALSE_WORDS = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')


def truth_value(value: Any) -> Optional[bool]:
    """Return the truth value of a bool or a yes/no word (any case), None for anything else."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _to_bool(value: Any) -> bool:
    truth = truth_value(value)
    if truth is None:
        raise ValueError(value)
    return truth


def load_yaml(path: str, node_name: str = 'evs_node') -> EvsConfig:
    """Read a ROS-style params file (``node: ros__parameters: {...}``) into an EvsConfig.

    Nested mappings and dotted keys are both accepted; ``/**`` wildcards are honoured.
    """
    params = load_parameters(path, node_name)
    return config_from_flat({k: v for k, v in params.items() if k.split('.')[0] in SECTIONS})


def load_parameters(path: str, node_name: str = 'evs_node', namespace: str = '') -> Dict[str, Any]:
    """Return the dotted parameters a params file gives node ``node_name`` in ``namespace``.

    Its ``/**`` section, then the sections naming the node (later ones win). A file without
    ``ros__parameters`` is read as the parameters themselves.
    """
    import yaml
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    full_name = '/'.join(part for part in (namespace.strip('/'), node_name) if part)
    params = {}
    for key in ('/**', '/**/' + node_name, node_name, '/' + node_name, full_name,
                '/' + full_name):
        section = document.get(key) or {}
        params.update(_flatten(section.get('ros__parameters', {})))
    if not params and 'ros__parameters' not in str(document):
        params = _flatten(document)
    return params


def _flatten(mapping: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat
