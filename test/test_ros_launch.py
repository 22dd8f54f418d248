"""launch/evs.launch.py: always parsed, and its launch-free helpers tested.

Run through launch's LaunchService (in a subprocess) when launch_ros is importable: params file vs
operating_point:=, namespace, image remap and log level, rviz:=true with and without rviz2,
container:=.

launch and launch_ros are not on PyPI: on machines without them the run tests are skipped.
"""

import ast
import os
import re
import signal
import subprocess
import sys

import pytest
import yaml

from evs_ros.ros import launch_support
from evs_ros.testing.player import FramePlayer, stop_node
from node_harness import FAKE_BACKEND
from test_ros_params import ParameterClient

ARGUMENTS = ('namespace', 'image', 'image_transport', 'params_file', 'operating_point',
             'log_level', 'rviz', 'container')
RUNNER = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService(argv=sys.argv[2:])
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[tuple(a.split(':=', 1)) for a in sys.argv[2:]]))
sys.exit(service.run())
"""
START_TIMEOUT_S = 90.0


def share_path(*parts: str) -> str:
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('evs_ros'), *parts)


def launch_ros_missing() -> bool:
    try:
        import launch_ros.actions  # noqa: F401
    except ImportError:
        return True
    return False


needs_launch = pytest.mark.skipif(
    launch_ros_missing(), reason='launch/launch_ros are not installed (ROS 2 installs have them; '
    'they are not on PyPI)')


# --- always: the file and its launch-free helpers -------------------------------------------

def test_launch_file_parses_and_declares_every_argument():
    path = share_path('launch', 'evs.launch.py')
    source = open(path, encoding='utf-8').read()
    tree = ast.parse(source, path)
    compile(tree, path, 'exec')
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert set(ARGUMENTS) <= strings, set(ARGUMENTS) - strings
    assert 'load_into_container' in source and 'OpaqueCoroutine' in source


@pytest.mark.parametrize('topic, namespace, resolved', [
    ('image', '', '/image'),
    ('image', 'front', '/front/image'),
    ('image', '/front/', '/front/image'),
    ('/cam/image_raw', 'front', '/cam/image_raw'),
    ('camera/image', '/robot/front', '/robot/front/camera/image'),
    ('~/debug', 'front', '/front/evs_node/debug'),
])
def test_topics_resolve_as_ros_expands_them(topic, namespace, resolved):
    assert launch_support.resolve_topic(topic, namespace) == resolved


def _display_topics(text: str):
    config = yaml.safe_load(text)
    return [d['Topic']['Value'] for d in config['Visualization Manager']['Displays']
            if 'Topic' in d]


@pytest.mark.parametrize('namespace, image, outputs_under, image_topic', [
    ('front', '/cam/image_raw', '/front', '/cam/image_raw'),
    ('/robot/front/', 'camera/image', '/robot/front', '/robot/front/camera/image'),
    ('', 'image', '', '/image'),
])
def test_rviz_config_follows_the_namespace_and_the_image_remap(namespace, image, outputs_under,
                                                               image_topic):
    template = open(share_path('rviz', 'evs.rviz'), encoding='utf-8').read()
    relative = _display_topics(template)
    assert 'image' in relative and len(relative) > 1 and not any('/' in t for t in relative)
    rendered = launch_support.render_rviz_config(template, namespace, image)
    assert _display_topics(rendered) == [
        image_topic if topic == 'image' else f'{outputs_under}/{topic}' for topic in relative]


def test_rviz_config_is_written_to_a_new_file():
    path = launch_support.write_rviz_config(share_path('rviz', 'evs.rviz'), 'front', 'image')
    try:
        assert '/front/image' in _display_topics(open(path).read())
    finally:
        os.remove(path)


def test_rviz_is_looked_up_in_the_ament_index_then_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'no_prefix'))
    monkeypatch.setenv('PATH', str(tmp_path))
    assert launch_support.find_rviz() is None
    fake = tmp_path / 'rviz2'
    fake.write_text('#!/bin/sh\n')
    fake.chmod(0o755)
    assert launch_support.find_rviz() == str(fake)
    prefix = tmp_path / 'prefix'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rviz2').write_text('')
    (prefix / 'lib' / 'rviz2').mkdir(parents=True)
    installed = prefix / 'lib' / 'rviz2' / 'rviz2'
    installed.write_text('#!/bin/sh\n')
    installed.chmod(0o755)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert launch_support.find_rviz() == str(installed)


@pytest.mark.parametrize('value, expected', [('true', True), ('True', True), ('1', True),
                                             ('false', False), ('', False), ('0', False)])
def test_boolean_arguments(value, expected):
    assert launch_support.parse_bool('rviz', value) is expected


def test_a_bad_boolean_argument_names_itself():
    with pytest.raises(ValueError, match=r'rviz:=maybe: must be true or false'):
        launch_support.parse_bool('rviz', 'maybe')


# --- with launch_ros: run it ----------------------------------------------------------------

class Launch:
    """The installed launch file run by a LaunchService in its own process group."""

    def __init__(self, env: dict, log_path, **arguments):
        self.log_path = log_path
        args = [f'{name}:={value}' for name, value in arguments.items()]
        with open(log_path, 'w') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-c', RUNNER, share_path('launch', 'evs.launch.py')] + args,
                env=dict(env, RCUTILS_COLORIZED_OUTPUT='0'), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return open(self.log_path, encoding='utf-8', errors='replace').read()

    def node_pids(self):
        return [int(pid) for pid in re.findall(r'\[evs_node-\d+\]: process started with pid '
                                               r'\[(\d+)\]', self.output())]

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it (SIGINT to the group); returns launch's exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.wait()

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f'launch still running after {timeout_s:.0f} s:\n{self.output()}')


@pytest.fixture
def run_launch(ros_env, tmp_path):
    """Start a launch and a player: the fixture gives (Launch, FramePlayer) for arguments.

    Stops both at the end and checks that no evs_node is left running and nothing printed a
    traceback.
    """
    started = []

    def start(**arguments):
        launch = Launch(ros_env, tmp_path / f'launch{len(started)}.log', **arguments)
        player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), topics=())
        started.append((launch, player))
        return launch, player

    yield start
    for launch, player in started:
        player.close()
        code = launch.interrupt()
        assert code == 0 and 'Traceback' not in launch.output(), launch.output()
        assert not [pid for pid in launch.node_pids() if _alive(pid)], launch.output()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fake_params_file(tmp_path, preset: str) -> str:
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'operating_point': {'preset': preset},
        'model': {'backend': FAKE_BACKEND, 'refiner': ''}}}}))
    return str(path)


def wait_for_node(player: FramePlayer, launch, name: str = '/evs_node', process=None):
    """Wait until node ``name`` offers its parameter services; its ParameterClient."""
    service = f'{name}/get_parameters'
    process = process or launch.process

    def up():
        return service in dict(player.node.get_service_names_and_types())
    if not player.wait_for(lambda: up() or process.poll() is not None, START_TIMEOUT_S) \
            or not up():
        pytest.fail(f'{name} did not come up:\n{launch.output()}')
    return ParameterClient(player, name.lstrip('/'))


@needs_launch
def test_the_params_file_preset_wins_without_operating_point(run_launch, tmp_path):
    launch, player = run_launch(params_file=fake_params_file(tmp_path, 'EVS09'),
                                namespace='front', image='/cam/image_raw', log_level='debug')
    params = wait_for_node(player, launch, '/front/evs_node')
    assert params.get('operating_point.preset') == ['EVS09']
    assert player.wait_for(lambda: player.node.count_subscribers('/cam/image_raw') > 0, 20.0)
    assert '[DEBUG]' in launch.output()


@needs_launch
def test_operating_point_argument_wins_over_the_params_file(run_launch, tmp_path):
    launch, player = run_launch(params_file=fake_params_file(tmp_path, 'EVS09'),
                                operating_point='evs07')
    params = wait_for_node(player, launch)
    assert player.wait_for(lambda: params.get('operating_point.preset') == ['EVS07'], 20.0)
    assert '[DEBUG]' not in launch.output()


@needs_launch
@pytest.mark.skipif(launch_support.find_rviz() is not None, reason='rviz2 is installed here')
def test_rviz_without_rviz2_warns_and_the_node_runs(run_launch, tmp_path):
    launch, player = run_launch(params_file=fake_params_file(tmp_path, 'EVS05'), rviz='true')
    wait_for_node(player, launch)
    assert launch.process.poll() is None
    warnings = [line for line in launch.output().splitlines() if 'rviz2' in line]
    assert len(warnings) == 1 and 'WARN' in warnings[0], launch.output()


FAKE_RVIZ = """#!/bin/sh
# rviz2 stand-in: keep the config it was given (-d FILE), run until told to quit.
cp "$2" "$FAKE_RVIZ_COPY"
while [ ! -e "$FAKE_RVIZ_QUIT" ]; do sleep 0.1; done
"""


@needs_launch
@pytest.mark.skipif(launch_support.find_rviz() is not None, reason='rviz2 is installed here')
def test_rviz_gets_the_remapped_topics_and_closing_it_ends_the_launch(ros_env, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'rviz2').write_text(FAKE_RVIZ)
    (bin_dir / 'rviz2').chmod(0o755)
    env = dict(ros_env, PATH=f'{bin_dir}{os.pathsep}{ros_env["PATH"]}',
               FAKE_RVIZ_COPY=str(tmp_path / 'seen.rviz'), FAKE_RVIZ_QUIT=str(tmp_path / 'quit'))
    launch = Launch(env, tmp_path / 'launch.log', params_file=fake_params_file(tmp_path, 'EVS05'),
                    namespace='front', image='/cam/image_raw', rviz='true')
    player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), topics=())
    try:
        wait_for_node(player, launch, '/front/evs_node')
        assert player.wait_for(lambda: os.path.exists(env['FAKE_RVIZ_COPY']), 20.0)
        topics = _display_topics(open(env['FAKE_RVIZ_COPY']).read())
        assert topics[0] == '/cam/image_raw' and '/front/overlay' in topics, topics
        (tmp_path / 'quit').write_text('')
        code = launch.wait()
    finally:
        player.close()
        launch.interrupt()
    assert code == 0, launch.output()
    assert launch.node_pids() and not [p for p in launch.node_pids() if _alive(p)]


def container_executable():
    from ament_index_python.packages import get_package_prefix
    path = os.path.join(get_package_prefix('evs_ros'), 'lib', 'evs_ros', 'evs_container')
    return path if os.access(path, os.X_OK) else None


@needs_launch
@pytest.mark.skipif(container_executable() is None, reason='evs_container is not installed')
def test_container_argument_loads_the_node_into_a_running_container(run_launch, ros_env, tmp_path):
    log_path = tmp_path / 'container.log'
    with open(log_path, 'w') as log:
        container = subprocess.Popen(
            [container_executable(), '--ros-args', '-r', '__node:=test_container'],
            env=ros_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        launch, player = run_launch(container='/test_container', namespace='front',
                                    params_file=fake_params_file(tmp_path, 'EVS09'),
                                    operating_point='EVS07', image='/cam/image_raw')
        params = wait_for_node(player, launch, '/front/evs_node', process=container)
        assert params.get('operating_point.preset') == ['EVS07']
        assert player.wait_for(lambda: player.node.count_subscribers('/cam/image_raw') > 0, 20)
        assert launch.wait() == 0, launch.output()  # loaded: launch has nothing left to do
        assert launch.node_pids() == [] and container.poll() is None
    finally:
        code = stop_node(container)
    assert code == 0 and 'Traceback' not in log_path.read_text(), log_path.read_text()


@pytest.mark.parametrize('value, expected', [('debug', 'debug'), ('INFO', 'info'),
                                             ('warning', 'warn'), (' error ', 'error')])
def test_log_levels(value, expected):
    assert launch_support.parse_log_level(value) == expected


def test_a_bad_log_level_or_transport_is_one_line():
    with pytest.raises(ValueError, match=r'^log_level:=verbose: must be one of debug, info, '
                       r'warn, error, fatal$'):
        launch_support.parse_log_level('verbose')
    with pytest.raises(ValueError, match=r'^image_transport:=jpeg: must be raw or compressed$'):
        launch_support.parse_image_transport('jpeg')


def test_arguments_override_the_params_file_in_the_load_request(tmp_path):
    values = {'namespace': 'front', 'image': '/cam/image_raw', 'image_transport': 'compressed',
              'params_file': fake_params_file(tmp_path, 'EVS09'), 'operating_point': 'EVS07',
              'log_level': 'debug', 'rviz': 'false', 'container': 'evs_container'}
    request = launch_support.load_request(values, 'evs_node')
    assert (request.node_name, request.node_namespace, request.log_level) == \
        ('evs_node', '/front', 10)
    assert list(request.remap_rules) == ['image:=/cam/image_raw']
    from rclpy.parameter import Parameter
    params = {p.name: Parameter.from_parameter_msg(p).value for p in request.parameters}
    assert params['operating_point.preset'] == 'EVS07' and params['model.backend'] == FAKE_BACKEND
    assert params['publish.subscribe_compressed'] is True
    values.update(operating_point='', image_transport='raw')
    params = {p.name: Parameter.from_parameter_msg(p).value
              for p in launch_support.load_request(values, 'evs_node').parameters}
    assert params['operating_point.preset'] == 'EVS09'
    assert params['publish.subscribe_compressed'] is False


def error_lines(launch) -> list:
    return [line for line in launch.output().splitlines() if '[ERROR]' in line]


@needs_launch
def test_a_bad_log_level_ends_the_launch_in_one_line(ros_env, tmp_path):
    launch = Launch(ros_env, tmp_path / 'launch.log', log_level='verbose')
    assert launch.wait() == 1, launch.output()
    errors = error_lines(launch)
    assert len(errors) == 1 and 'log_level:=verbose: must be one of debug' in errors[0]
    assert 'Traceback' not in launch.output() and launch.node_pids() == []


@needs_launch
def test_an_unknown_container_ends_the_launch_in_one_line(ros_env, tmp_path):
    launch = Launch(ros_env, tmp_path / 'launch.log', container='/nowhere')
    assert launch.wait() == 1, launch.output()
    errors = error_lines(launch)
    assert len(errors) == 1 and 'no component container offers /nowhere/_container/load_node' \
        in errors[0], launch.output()


@needs_launch
@pytest.mark.skipif(container_executable() is None, reason='evs_container is not installed')
def test_a_refused_load_ends_the_launch_in_one_line(ros_env, tmp_path):
    log_path = tmp_path / 'container.log'
    with open(log_path, 'w') as log:
        container = subprocess.Popen([container_executable()], env=ros_env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
    try:
        launch = Launch(ros_env, tmp_path / 'launch.log', container='evs_container',
                        params_file=fake_params_file(tmp_path, 'EVS99'))
        assert launch.wait() == 1, launch.output()
    finally:
        code = stop_node(container)
    errors = error_lines(launch)
    assert len(errors) == 1 and 'refused to load evs_ros::EvsNode: operating_point.preset' in \
        errors[0], launch.output()
    assert code == 0, log_path.read_text()
