"""The one options path of every `evs` command: defaults < --params < --set < shortcut flags."""

import argparse
import json

import pytest

from evs_ros.tools import common


def parse(argv, **kwargs):
    parser = argparse.ArgumentParser()
    common.add_config_arguments(parser, **kwargs)
    return parser.parse_args(argv)


def test_unset_flags_keep_the_params_file(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters:\n    operating_point: {preset: EVS10}\n'
                      '    model: {backend: "python:fake_models:make_model", refiner: ""}\n'
                      '    flow: {scale: 0.5}\n')
    config = common.build_config(parse(['--params', str(params)]))
    assert config.operating_point.name == 'EVS10' and config.flow.scale == 0.5
    assert config.model.backend == 'python:fake_models:make_model' and config.model.refiner == ''


def test_set_overrides_the_file_and_shortcuts_override_set(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('flow:\n  scale: 0.5\noperating_point:\n  preset: EVS10\n')
    config = common.build_config(parse([
        '--config', str(params), '--set', 'flow.scale=0.25', '--set',
        'operating_point.preset=EVS03', '--operating-point', 'evs7', '--refiner', 'none',
        '--flow-threads', '2']))
    assert config.flow.scale == 0.25 and config.operating_point.name == 'EVS07'
    assert config.model.refiner == '' and config.runtime.flow_threads == 2


@pytest.mark.parametrize('argv, message', [
    (['--set', 'flow.scale'], 'is not KEY=VALUE'),
    (['--set', 'flow.scale=fast'], "flow.scale='fast': must be a number"),
    (['--set', 'flow.nothing=1'], "unknown setting 'flow.nothing'"),
    (['--operating-point', 'EVS42'], "preset='EVS42': must be one of"),
])
def test_bad_options_name_the_setting(argv, message):
    with pytest.raises(ValueError, match=message):
        common.build_config(parse(argv))


def test_explicit_operating_point_fields_apply_to_every_preset_of_a_sweep():
    ops = common.parse_operating_points(['EVS07', 'ADAPTIVE@0.03'])
    args = parse(['--set', 'operating_point.downscale=0.5', '--set', 'flow.scale=0.5'])
    changed = common.with_explicit_fields(ops, common.explicit_settings(args))
    assert [(op.name, op.downscale) for op in changed] == [('EVS07', 0.5), ('ADAPTIVE@0.03', 0.5)]
    assert changed[0].keyframe_interval == 5 and changed[1].adaptive_threshold == 0.03
    assert common.with_explicit_fields(ops, common.explicit_settings(parse([]))) == ops
    with pytest.raises(ValueError, match='operating_point.downscale'):
        common.with_explicit_fields(ops, {'operating_point.downscale': 'half'})


def test_sizes_in_both_orders():
    assert common.parse_size('2048x1024') == (2048, 1024)
    assert common.parse_size('513X1025', order='hw', minimum=2) == (513, 1025)
    assert common.parse_size('') is None
    assert common.parse_sizes('64x32, 128x64') == [(64, 32), (128, 64)]
    with pytest.raises(ValueError, match='is not HEIGHTxWIDTH'):
        common.parse_size('1x1', order='hw', minimum=2)


def test_fail_prints_one_line_and_returns_2(capsys):
    assert common.fail('eval', ValueError('first line\nsecond line')) == 2
    assert capsys.readouterr().err == 'evs eval: error: first line\n'


def test_json_is_written_without_nan(tmp_path):
    path = tmp_path / 'deep' / 'r.json'
    common.write_json(str(path), {'a': [1, None]})
    assert json.loads(path.read_text()) == {'a': [1, None]}
    common.write_json(str(path), {'a': (float('nan'), 2.5), 'b': {'c': float('inf')}})
    text = path.read_text()
    assert 'NaN' not in text and 'Infinity' not in text  # strict JSON: null instead
    assert json.loads(text) == {'a': [None, 2.5], 'b': {'c': None}}
    info = common.hardware_info()
    assert info['cores'] >= 1 and common.hardware_line(info).endswith('cores')
