"""`evs bench` (operating points vs per-frame) and `evs eval`, end to end on tiny inputs."""

import json
import os

import pytest

from evs_ros.config import OPERATING_POINTS
from evs_ros.data.cityscapes import write_snippet
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.tools import cli

FAKE = 'python:fake_models:make_model'
OP_KEYS = {'name': str, 'D': float, 'S': int, 'W': bool, 'R': bool, 'adaptive': bool,
           'hz': float, 'speedup': float, 'miou': float, 'per_class_iou': dict,
           'latency_ms_p50': float, 'latency_ms_p99': float, 'frames': int, 'keyframes': int}
HARDWARE_KEYS = ('cpu', 'cores', 'torch', 'opencv', 'device')


def bench(tmp_path, *extra):
    out = tmp_path / 'bench'
    code = cli.main(['bench', '--quick', '--out', str(out), '--json', str(tmp_path / 'b.json'),
                     '--synth-snippets', '1', '--resolution', '128x64', *extra])
    assert code == 0
    with open(tmp_path / 'b.json', encoding='utf-8') as stream:
        return json.load(stream), out


def check_schema(report):
    for key in HARDWARE_KEYS:
        assert key in report['hardware']
    assert report['resolution'] == '128x64'
    for entry in report['operating_points']:
        for key, kind in OP_KEYS.items():
            assert isinstance(entry[key], kind), (entry['name'], key)
        assert all(value is None or 0.0 <= value <= 1.0
                   for value in entry['per_class_iou'].values())
        assert entry['latency_ms_p50'] <= entry['latency_ms_p99']
    assert report['operating_points'][0]['name'] == 'PERFRAME'
    assert report['operating_points'][0]['speedup'] == 1.0


def test_bench_quick_with_fake_backend_writes_json_markdown_and_plots(tmp_path):
    report, out = bench(tmp_path, '--backend', FAKE, '--refiner', '', '--figure-propagations',
                        '4', '--operating-points', 'EVS02', 'EVS03', 'EVS06', 'EVS07',
                        'EVS08', 'ADAPTIVE')
    check_schema(report)
    assert [e['name'] for e in report['operating_points']] == [
        'PERFRAME', 'EVS02', 'EVS03', 'EVS06', 'EVS07', 'EVS08', 'ADAPTIVE']
    assert [row['case'] for row in report['table1']['rows']] == ['S=2', 'S=5']
    assert report['figure6']['propagations'] == [0, 1, 2, 3, 4]
    assert set(report['figure7']['by_propagations']) == {'1', '2', '4'}
    assert report['data']['kind'] == 'synthetic' and report['data']['split'] == 'test'
    assert report['perframe_hz_both_cores'] > 0
    for entry in report['operating_points']:
        assert entry['runtime_speedup'] > 0 and entry['runtime_hz'] > 0, entry['name']
        assert 0.0 <= entry['runtime_miou'] <= 1.0, entry['name']
    markdown = (out / 'bench.md').read_text()
    assert '| PERFRAME |' in markdown and 'Table 1' in markdown and 'Figure 6' in markdown
    assert 'The runtime on both cores' in markdown and '| EVS07 |' in markdown
    for name in ('speed_accuracy.png', 'figure6.png', 'figure7.png', 'table1.png'):
        assert (out / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name


@pytest.fixture
def random_icnet(tmp_path):
    """Paths of a random-init reduced ICNet and a matching Refiner checkpoint."""
    torch = pytest.importorskip('torch')
    from evs_ros.models.checkpoint import save_checkpoint
    from evs_ros.models.icnet import ICNet
    from evs_ros.models.refiner import RefinerNet
    torch.manual_seed(0)
    icnet_config = {'num_classes': 19, 'width_mult': 0.125, 'aux_heads': False}
    icnet = ICNet(**icnet_config)
    refiner_config = {'num_classes': 19, 'feature_channels': icnet.feature_channels,
                      'width_mult': 0.125}
    paths = (str(tmp_path / 'icnet.pt'), str(tmp_path / 'refiner.pt'))
    save_checkpoint(paths[0], 'icnet', icnet_config, icnet)
    save_checkpoint(paths[1], 'refiner', refiner_config, RefinerNet(**refiner_config))
    return paths


def test_bench_with_random_icnet_and_refiner(tmp_path, random_icnet):
    icnet_path, refiner_path = random_icnet
    report, out = bench(tmp_path, '--backend', f'icnet:{icnet_path}', '--refiner', refiner_path,
                        '--figure-propagations', '0', '--operating-points', 'EVS02', 'EVS03',
                        '--device', 'cpu', '--inference-threads', '1')
    check_schema(report)
    entries = {e['name']: e for e in report['operating_points']}
    assert entries['EVS02']['refined_frames'] > 0 and entries['EVS03']['refined_frames'] == 0
    assert report['refiner'] == refiner_path
    assert report['figure6'] is None and report['figure7'] is None
    assert (out / 'bench.md').exists()


@pytest.mark.parametrize('engine', ['onnxruntime', 'torch'])
def test_bench_reports_its_engine_and_the_speed_against_torch(tmp_path, random_icnet, engine):
    """The baseline PERFRAME runs on the keyframes' engine.

    Per-frame torch eager is timed next to it (what a user had without an engine) and every speedup
    is given against both.
    """
    icnet_path, refiner_path = random_icnet
    report, out = bench(tmp_path, '--backend', f'icnet:{icnet_path}', '--refiner', refiner_path,
                        '--figure-propagations', '0', '--operating-points', 'EVS02', 'EVS07',
                        '--device', 'cpu', '--engine', engine)
    assert report['engine'] == report['refiner_engine'] == engine
    assert report['engines']['torch'] and 'openvino' in report['engines']
    assert report['perframe_torch_hz'] > 0 and report['perframe_torch_hz_both_cores'] > 0
    for entry in report['operating_points']:
        assert entry['speedup_vs_torch'] == pytest.approx(
            entry['hz'] / report['perframe_torch_hz'], rel=1e-3)
        assert entry['runtime_speedup_vs_torch'] > 0
    if engine == 'torch':  # nothing measured twice: the baseline is the reference
        assert report['perframe_torch_hz'] == report['operating_points'][0]['hz']
        assert report['operating_points'][0]['speedup_vs_torch'] == 1.0
    markdown = (out / 'bench.md').read_text()
    assert f'Engine: {engine}' in markdown and 'x per-frame torch' in markdown
    assert ('Per-frame on torch eager' in markdown) == (engine != 'torch')


def test_missing_weights_give_a_clear_error(tmp_path, capsys):
    code = cli.main(['bench', '--quick', '--out', str(tmp_path), '--synth-snippets', '1',
                     '--backend', f'icnet:{tmp_path}/missing.pt'])
    assert code == 2
    assert 'missing.pt' in capsys.readouterr().err


def test_eval_on_cityscapes_layout_reports_accuracy_only(tmp_path):
    frames = list(render_snippet(SynthConfig(width=96, height=48, seed=1_000_000)))
    write_snippet(str(tmp_path / 'data'), 'val', 'synthval', 0, frames)
    json_path = tmp_path / 'eval' / 'e.json'
    code = cli.main(['eval', '--data', str(tmp_path / 'data'), '--backend', FAKE, '--refiner',
                     'none', '--operating-points', 'EVS05', '--json', str(json_path)])
    assert code == 0
    report = json.loads(json_path.read_text())
    entries = report['operating_points']
    assert [e['name'] for e in entries] == ['PERFRAME', 'EVS05']
    assert all('hz' not in e and 0.0 <= e['miou'] <= 1.0 for e in entries)
    evs05 = OPERATING_POINTS['EVS05']
    assert entries[1]['propagations_at_annotated'] == evs05.keyframe_interval - 1
    assert report['data']['split'] == 'val' and report['snippets'] == ['synthval_000000']
    assert os.path.exists(str(json_path).replace('.json', '.md'))
