"""Layering: only evs_ros/ros imports ROS; the core never reaches into the ROS adapter."""

import ast
from pathlib import Path

import evs_ros

PACKAGE = Path(evs_ros.__file__).parent
ROS_MODULES = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'rcl_interfaces',
               'builtin_interfaces', 'cv_bridge', 'launch', 'launch_ros', 'vision_msgs'}
CORE_PACKAGES = ('flow', 'models', 'pipeline', 'data')


def _imports(path: Path):
    """Top-level module names of every import statement in ``path`` (lazy ones included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def _sources(*parts):
    for path in sorted(PACKAGE.rglob('*.py')):
        relative = path.relative_to(PACKAGE)
        if not parts or relative.parts[0] in parts:
            yield relative, path


def test_only_the_ros_adapter_imports_ros_packages():
    offenders = [f'{relative}: {name}' for relative, path in _sources()
                 if relative.parts[0] not in ('ros', 'msg')
                 for name in _imports(path) if name.split('.')[0] in ROS_MODULES]
    assert not offenders, offenders


def test_core_packages_do_not_import_the_ros_adapter():
    offenders = [f'{relative}: {name}' for relative, path in _sources(*CORE_PACKAGES)
                 for name in _imports(path)
                 if name == 'evs_ros.ros' or name.startswith(('evs_ros.ros.', 'evs_ros.tools'))]
    assert not offenders, offenders
