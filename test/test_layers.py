"""Layering.

Imports point one way, config <- {data, flow} <- models <- pipeline <- {training, evaluation, bags}
<- ros <- testing <- tools, and only the ROS adapter (evs_ros/ros) and the DDS harness
(evs_ros/testing) import ROS packages.

``data`` is a leaf beside ``flow`` (labels, datasets, readers). ``testing`` is the DDS harness of
the tests and benchmarks (players, node sessions): not part of the node, so it sits above
``ros``. ``tools`` may start the ROS node (``evs demo``, ``evs node``) through the harness, so it
sits above both; nothing below imports either. Command modules import only ``tools.common``
(``cli``/``bench`` dispatch by name with importlib).
"""

import ast
from pathlib import Path

import pytest

import evs_ros

PACKAGE = Path(evs_ros.__file__).parent
ROS_MODULES = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'rcl_interfaces',
               'builtin_interfaces', 'cv_bridge', 'launch', 'launch_ros', 'vision_msgs',
               'lifecycle_msgs', 'composition_interfaces', 'ament_index_python'}
LAYER = {'config': 0, 'errors': 0, 'data': 1, 'flow': 1, 'models': 2, 'pipeline': 3, 'training': 4,
         'evaluation': 4, 'bags': 4, 'msg': 4, 'ros': 5, 'testing': 6, 'tools': 7}
ROS_LAYERS = ('ros', 'testing')
"""The layers that may import ROS packages: the node's adapter and the DDS harness."""


def _imports(path: Path):
    """Yield the module names of every import statement in ``path`` (lazy ones included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f'{node.module}.{alias.name}' for alias in node.names)


def _sources():
    for path in sorted(PACKAGE.rglob('*.py')):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] != 'msg':
            yield relative, path


def _layer(relative: Path) -> str:
    return relative.stem if len(relative.parts) == 1 else relative.parts[0]


def _evs_layer(module: str):
    parts = module.split('.')
    if parts[0] != 'evs_ros' or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYER else None


def test_every_module_belongs_to_a_layer():
    unknown = sorted({_layer(r) for r, _ in _sources()} - set(LAYER) - {'__init__'})
    assert not unknown, f'add {unknown} to LAYER (and to the diagram in README)'


@pytest.mark.parametrize('relative, path', list(_sources()), ids=lambda v: str(v))
def test_imports_point_down_the_layers(relative, path):
    own = _layer(relative)
    if own == '__init__':
        return
    upward = sorted({name for name in _imports(path) if _evs_layer(name) is not None
                     and _evs_layer(name) != own
                     and LAYER[_evs_layer(name)] >= LAYER[own]})
    assert not upward, f'{relative} ({own}) imports a layer at or above it: {upward}'


def test_only_the_ros_adapter_and_the_harness_import_ros_packages():
    offenders = [f'{relative}: {name}' for relative, path in _sources()
                 if _layer(relative) not in ROS_LAYERS for name in _imports(path) if _is_ros(name)]
    assert not offenders, offenders


def _is_ros(module: str) -> bool:
    """Tell whether ``module`` is a ROS package or our generated messages (ROS adapter only)."""
    return module.split('.')[0] in ROS_MODULES or module.startswith('evs_ros.msg')


def test_command_modules_import_no_other_command():
    offenders = []
    for relative, path in _sources():
        if _layer(relative) != 'tools' or relative.stem in ('common', '__init__'):
            continue
        for name in _imports(path):
            if name.startswith('evs_ros.tools.') and name.split('.')[2] != 'common':
                offenders.append(f'{relative}: {name}')
    assert not offenders, offenders
