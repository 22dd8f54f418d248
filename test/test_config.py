"""The typed config without ROS: dotted names, validation messages, YAML files, metadata."""

import os

import pytest
import yaml

from evs_ros.config import (
    OPERATING_POINTS, PARAMETER_INFO, RESTART_REQUIRED, EvsConfig, FlowConfig, config_from_flat,
    load_yaml, operating_point, to_flat,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_to_flat_and_back_is_the_identity():
    config = config_from_flat({'operating_point.preset': 'EVS12', 'flow.scale': 0.5,
                               'iam.backward_flow': 'dis', 'runtime.flow_threads': 2})
    flat = to_flat(config)
    assert flat['operating_point.downscale'] == 0.5 and flat['flow.scale'] == 0.5
    assert config_from_flat({k: v for k, v in flat.items()}) == config


def test_preset_applies_first_and_explicit_fields_override_it():
    config = config_from_flat({'operating_point.keyframe_interval': 4,
                               'operating_point.preset': 'evs7'})
    assert config.operating_point.keyframe_interval == 4
    assert config.operating_point.warp and not config.operating_point.refine


@pytest.mark.parametrize('values, message', [
    ({'runtime.flow_threads': -1}, r'runtime.flow_threads=-1: must be in \[1, 64\]'),
    ({'runtime.flow_threads': 1.5}, r'runtime.flow_threads=1.5: must be an integer in'),
    ({'flow.scale': 'fast'}, r"flow.scale='fast': must be a number in \[0.05, 1.0\]"),
    ({'flow.method': 'magic'}, r"flow.method='magic': must be one of dis, farneback"),
    ({'model.device': 'gpu'}, r"model.device='gpu': must be one of auto, cpu, cuda"),
    ({'operating_point.warp': 'maybe'}, r"operating_point.warp='maybe': must be true or false"),
    ({'iam.smoothing_px': 4}, r'iam.smoothing_px=4: must be an odd number'),
    ({'flow.patch_stride': 9}, r'flow.patch_stride=9: must be <= flow.patch_size \(8\)'),
    ({'operating_point.preset': 'EVS99'}, r"preset='EVS99': must be one of EVS01, .*PERFRAME"),
    ({'operating_point.refine': True, 'operating_point.warp': False},
     r'refine=True: needs operating_point.warp=True'),
    ({'model.backend': 'nospec'}, r"model.backend='nospec': must be auto or a SPEC like"),
    ({'flow.colour': 1}, r"unknown setting 'flow.colour'"),
])
def test_refused_values_name_the_setting_and_what_is_allowed(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_flat(values)


def test_values_convert_from_yaml_and_command_line_text():
    config = config_from_flat({'flow.scale': 1, 'operating_point.warp': 'off',
                               'runtime.input_queue_size': '3', 'publish.overlay': 'yes'})
    assert config.flow.scale == 1.0 and isinstance(config.flow.scale, float)
    assert not config.operating_point.warp and config.runtime.input_queue_size == 3
    assert config.publish.overlay is True


def test_every_setting_has_help_and_ranges_match_validation():
    for name, info in PARAMETER_INFO.items():
        assert info.help, name
        if info.range is None:
            continue
        low, high = info.range
        section, key = name.split('.')
        default = getattr(getattr(EvsConfig(), section), key)
        with pytest.raises(ValueError, match=name.replace('.', r'\.')):
            config_from_flat({name: type(default)(high + 1)})
    assert 'model.backend' in RESTART_REQUIRED and 'flow.scale' not in RESTART_REQUIRED


def test_shipped_params_file_lists_every_setting_with_its_default(tmp_path):
    with open(os.path.join(REPO, 'config', 'evs.yaml'), encoding='utf-8') as stream:
        document = yaml.safe_load(stream)
    assert load_yaml(os.path.join(REPO, 'config', 'evs.yaml')) == EvsConfig()
    params = document['/**']['ros__parameters']
    listed = {f'{section}.{key}' for section, values in params.items()
              if isinstance(values, dict) for key in values}
    missing = sorted(set(PARAMETER_INFO) - listed - {'operating_point.name'}
                     - {f'operating_point.{f}' for f in ('downscale', 'keyframe_interval', 'warp',
                                                         'refine', 'adaptive',
                                                         'adaptive_threshold',
                                                         'max_keyframe_interval',
                                                         'flow_scale')})
    assert not missing, f'config/evs.yaml does not list {missing}'


def test_load_yaml_reads_node_sections_wildcards_and_plain_mappings(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    flow: {scale: 0.5}\n'
                    'evs_node:\n  ros__parameters:\n    operating_point.preset: EVS10\n')
    config = load_yaml(str(path))
    assert config.flow.scale == 0.5 and config.operating_point == OPERATING_POINTS['EVS10']
    plain = tmp_path / 'plain.yaml'
    plain.write_text('iam:\n  dilation_px: 6\n')
    assert load_yaml(str(plain)).iam.dilation_px == 6


def test_operating_point_names_are_canonical():
    assert operating_point('evs5') is OPERATING_POINTS['EVS05']
    assert operating_point(' Adaptive ').name == 'ADAPTIVE'
    assert operating_point('perframe').keyframe_interval == 1
    assert FlowConfig().dis_preset == 'ultrafast'


def test_an_operating_point_may_carry_its_own_flow_scale():
    from evs_ros.config import effective_flow
    config = config_from_flat({'flow.scale': 0.5, 'operating_point.preset': 'EVS07'})
    assert effective_flow(config).scale == 0.5
    scaled = config_from_flat({'operating_point.flow_scale': 0.25}, config)
    assert effective_flow(scaled).scale == 0.25 and scaled.flow.scale == 0.5
    assert effective_flow(config_from_flat({'operating_point.preset': 'EVS14'})).scale == 0.25
    with pytest.raises(ValueError, match='flow_scale=0.01: must be 0'):
        config_from_flat({'operating_point.flow_scale': 0.01})
