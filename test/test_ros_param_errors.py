"""Bad parameter values of the installed evs_node: one line, no traceback.

From the command line (``-p``), a params file and ``ros2 param set`` (a SetParameters call): one
line naming the parameter and its allowed values; start-up errors exit with code 2. Values that
convert cleanly (an integer for a float) are accepted, and preset names are canonicalised.
"""

import subprocess

import pytest
import yaml

from evs_ros.config import PARAMETER_INFO, PRESET_NAMES
from evs_ros.testing.player import FramePlayer, start_node, stop_node
from node_harness import FAKE_BACKEND, PARAMS_FILE
from test_ros_params import ParameterClient

BASE = {'model.backend': FAKE_BACKEND, 'model.refiner': "''"}
BAD_VALUES = [('runtime.flow_threads', -1), ('flow.scale', 'fast'),
              ('operating_point.preset', 'EVS99')]


def allowed(name: str):
    """Return what the message must list as allowed for ``name`` (from the config's metadata)."""
    if name == 'operating_point.preset':
        return list(PRESET_NAMES)
    info = PARAMETER_INFO[name]
    return list(info.choices) if info.choices else [str(v) for v in info.range]


def params_file(tmp_path, values: dict) -> str:
    """Write a params file for every node (``/**``), dotted ``values`` nested as ROS expects."""
    tree = {}
    for dotted, value in values.items():
        *sections, leaf = dotted.split('.')
        branch = tree
        for section in sections:
            branch = branch.setdefault(section, {})
        branch[leaf] = value
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': tree}}))
    return str(path)


def start(ros_env, tmp_path, source: str, name: str, value):
    """Start the node with the fake backend and ``name`` set to ``value``.

    Set in the params file (``source`` 'file') or with ``-p`` ('cli'). The params file then does
    not name ``name``: rcl keeps a params file's value when ``-p`` gives one of another type.
    """
    file_values = {'model.backend': FAKE_BACKEND, 'model.refiner': ''}
    if source == 'file':
        file_values[name] = value
    cli_values = {name: value} if source == 'cli' else {}
    return start_node(ros_env, params_file(tmp_path, file_values), cli_values,
                      log_path=str(tmp_path / 'node.log'))


def run_to_exit(ros_env, tmp_path, source: str, name: str, value):
    """Start the node with one setting from ``source``; (exit code, output)."""
    process = start(ros_env, tmp_path, source, name, value)
    try:
        process.wait(30.0)  # a node that starts is stopped: exit code 0
    except subprocess.TimeoutExpired:
        stop_node(process)
    return process.returncode, (tmp_path / 'node.log').read_text()


@pytest.mark.parametrize('source', ['cli', 'file'])
@pytest.mark.parametrize('name, value', BAD_VALUES)
def test_bad_start_up_value_is_one_line_and_exit_code_2(ros_env, tmp_path, source, name, value):
    code, output = run_to_exit(ros_env, tmp_path, source, name, value)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and 'Traceback' not in output, output
    assert name in lines[0] and str(value) in lines[0], lines[0]
    missing = [word for word in allowed(name) if word not in lines[0]]
    assert not missing, (missing, lines[0])


@pytest.mark.parametrize('source', ['cli', 'file'])
def test_integer_for_a_float_is_accepted_as_a_float(ros_env, tmp_path, source):
    log_path = tmp_path / 'node.log'
    process = start(ros_env, tmp_path, source, 'flow.scale', 1)
    player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), topics=())
    try:
        player.wait_for_node(process)
        value = ParameterClient(player).get('flow.scale')[0]
    finally:
        player.close()
        code = stop_node(process)
    assert isinstance(value, float) and value == 1.0, value
    assert code == 0 and 'Traceback' not in log_path.read_text(), log_path.read_text()


def test_set_at_run_time_rejects_with_one_line_and_canonicalises_presets(ros_env, tmp_path):
    log_path = tmp_path / 'node.log'
    process = start_node(ros_env, PARAMS_FILE, BASE, log_path=str(log_path))
    player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), topics=())
    try:
        player.wait_for_node(process)
        params = ParameterClient(player)
        for name, value in [('operating_point.preset', 'EVS99'), ('flow.method', 'magic')]:
            result = params.set(**{name.replace('.', '__'): value})[0]
            assert not result.successful, (name, value)
            assert '\n' not in result.reason and name in result.reason, result.reason
            assert all(word in result.reason for word in allowed(name)), result.reason
        assert params.set(operating_point__preset='evs03')[0].successful
        assert player.wait_for(lambda: params.get('operating_point.preset') == ['EVS03'], 20.0), \
            params.get('operating_point.preset')
    finally:
        player.close()
        code = stop_node(process)
    assert code == 0 and 'Traceback' not in log_path.read_text(), log_path.read_text()
