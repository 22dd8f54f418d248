"""Shared fixtures: ROS isolation (own domain id, localhost-only discovery) and small images."""

import ast
import functools
import glob
import importlib.util
import os
import sys

import numpy as np
import pytest

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TEST_DIR)
if TEST_DIR not in sys.path:  # fake models etc. for `python:` backends
    sys.path.insert(0, TEST_DIR)

HAS_RCLPY = importlib.util.find_spec('rclpy') is not None
DISTRO_MODULES = ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs',
                  'lifecycle_msgs', 'composition_interfaces', 'ament_index_python', 'launch',
                  'launch_ros', 'evs_ros.ros', 'evs_ros.msg', 'node_harness', 'ros_clients')
"""Imports that make a test module depend on the ROS 2 distribution (ours included)."""


@functools.lru_cache(maxsize=None)
def _imports_ros(path: str) -> bool:
    """Tell whether the module at ``path`` imports one of :data:`DISTRO_MODULES` anywhere."""
    with open(path, encoding='utf-8') as source:
        tree = ast.parse(source.read(), path)
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module]
    return any(name == module or name.startswith(module + '.')
               for name in names for module in DISTRO_MODULES)


# Without rclpy (Python 3.10 here: PyPI has ROS 2 wheels for 3.11/3.12 only; Humble users source
# their ROS install) the test files that import ROS or the colcon install space are not
# collected and the tests that need a ROS graph are skipped; the header says so; everything else
# runs.
collect_ignore = [] if HAS_RCLPY else sorted(
    os.path.basename(path) for path in glob.glob(os.path.join(TEST_DIR, 'test_*.py'))
    if _imports_ros(path))


def pytest_report_header(config):
    if collect_ignore:
        return (f'rclpy is not importable (Python {sys.version_info[0]}.{sys.version_info[1]} '
                f'without a ROS 2 install): {len(collect_ignore)} ROS test files not collected '
                f'({", ".join(collect_ignore)})')
    return None


def pytest_collection_modifyitems(items):
    """Mark the tests that need a ROS graph (they use ``ros_env``) with ``ros``.

    ``make test-fast`` deselects them and the ``slow`` ones. Those and every test of a module
    that imports rclpy, ROS messages or ``evs_ros.ros`` are also marked ``distro``: what can
    differ between ROS 2 distributions (the rest runs the same Python packages on each).
    """
    for item in items:
        if 'ros_env' in getattr(item, 'fixturenames', ()):
            item.add_marker(pytest.mark.ros)
            item.add_marker(pytest.mark.distro)
            if not HAS_RCLPY:
                item.add_marker(pytest.mark.skip(reason='needs a ROS graph: rclpy is not '
                                                        'importable here'))
        elif _imports_ros(str(item.fspath)):
            item.add_marker(pytest.mark.distro)


def pick_domain_id(salt: int = 0) -> int:
    """Return a ROS_DOMAIN_ID unlikely to collide with concurrent runs (1..100, avoid 0)."""
    return 1 + (os.getpid() * 7 + salt * 13) % 100


@pytest.fixture(autouse=True, scope='session')
def hermetic_caches(tmp_path_factory):
    """Empty weights and engine caches for the whole run.

    What the developer fetched with ``evs weights get`` never changes a test (``model.backend:
    auto`` looks there); tests that need a cache fill their own (``local_http.isolate_caches``).
    """
    root = tmp_path_factory.mktemp('caches')
    saved = {name: os.environ.get(name) for name in ('XDG_CACHE_HOME', 'HF_HOME')}
    os.environ['XDG_CACHE_HOME'] = str(root / 'xdg')
    os.environ['HF_HOME'] = str(root / 'hf')
    for name in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'TRANSFORMERS_CACHE'):
        os.environ.pop(name, None)
    yield root
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def ros_env(monkeypatch, request):
    """Environment for this test's ROS processes: own domain, localhost discovery, FastDDS."""
    domain_id = pick_domain_id(hash(request.node.nodeid) % 97)
    profile = os.path.join(REPO, 'config', 'fastdds_large_images.xml')
    env = {
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'FASTDDS_DEFAULT_PROFILES_FILE': profile,
        'PYTHONPATH': TEST_DIR + os.pathsep + os.environ.get('PYTHONPATH', ''),
        'PYTHONUNBUFFERED': '1',
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)


@pytest.fixture
def textured_frames():
    """Return 12 BGR uint8 frames (96x160) of a smooth random texture moving right by 2 px."""
    rng = np.random.default_rng(0)
    import cv2
    base = cv2.GaussianBlur(rng.integers(0, 255, (96, 240, 3), dtype=np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(base[:, 40 - 2 * i:200 - 2 * i]) for i in range(12)]


@pytest.fixture
def harness(ros_env, tmp_path):
    """``start(overrides=None, **kwargs) -> NodeHarness``: the installed node + players.

    Every started node must still be alive at the end and exit cleanly (its log is shown
    otherwise).
    """
    from node_harness import NodeHarness
    started = []

    def start(overrides=None, **kwargs):
        node = NodeHarness(ros_env, str(tmp_path / 'node.log'), overrides, **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        alive = node.alive()
        code = node.close()
        assert alive and code in (0, -2), node.log()
