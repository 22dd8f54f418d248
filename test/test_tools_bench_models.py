"""`evs bench models` and `evs bench` with an hf: network, at tiny sizes.

ICNet, SegFormer-B0..B5 with real shapes and their Refiners: the reports' contents, never timings.
"""

import json

import pytest

from evs_ros.models.hf_random import (RANDOM_MARKER, SEGFORMER_SHAPES, random_segformer,
                                      save_random_segformer, segformer_variant)
from evs_ros.models.engines import engine_version
from evs_ros.tools import cli
from tiny_hf import save_tiny_model

PUBLISHED_PARAMETERS_M = {'b0': 3.7, 'b2': 27.4}  # SegFormer paper Table 1: 3.8 and 27.5 in all


@pytest.mark.parametrize('variant', ['b0', 'b2'])
def test_random_segformers_have_the_published_shapes(variant):
    network = random_segformer(variant)
    config = network.config
    assert config.hidden_sizes == SEGFORMER_SHAPES[variant]['hidden_sizes']
    assert config.depths == SEGFORMER_SHAPES[variant]['depths']
    assert config.num_labels == 19 and config.id2label[0] == 'road'
    parameters_m = sum(p.numel() for p in network.parameters()) / 1e6
    assert parameters_m == pytest.approx(PUBLISHED_PARAMETERS_M[variant], abs=0.1)


def test_variant_names():
    assert segformer_variant('SegFormer-B2') == segformer_variant('b2') == 'b2'
    with pytest.raises(ValueError, match='segformer-b0, segformer-b1'):
        segformer_variant('segformer-b9')


def test_bench_models_writes_json_and_markdown(tmp_path):
    out = tmp_path / 'models.json'
    assert cli.main(['bench', 'models', '--out', str(out), '--networks', 'icnet,segformer-b0',
                     '--widths', '0.25', '--sizes', '64x32,96x48', '--threads', '1',
                     '--repeats', '1', '--warmup', '0']) == 0
    report = json.loads(out.read_text())
    rows = report['rows']
    assert [(r['network'], r['size'], r['engine']) for r in rows] == [
        ('icnet', '64x32', 'torch'), ('segformer-b0', '64x32', 'torch'),
        ('icnet', '96x48', 'torch'), ('segformer-b0', '96x48', 'torch')]
    assert [r['feature_channels'] for r in rows[:2]] == [64, 32]
    assert rows[0]['width_mult'] == 0.25 and rows[1]['width_mult'] is None
    for row in rows:
        assert row['network_ms'] > 0 and row['refiner_ms'] > 0 and row['threads'] == 1
        assert row['refiner_speedup_vs_network'] == pytest.approx(
            row['network_ms'] / row['refiner_ms'], rel=0.02, abs=0.01)
        assert row['network_speedup_vs_torch'] == 1.0
    assert {'cpu', 'cores', 'torch'} <= set(report['hardware'])
    assert report['engines']['torch'] and 'openvino' in report['engines']
    markdown = (tmp_path / 'models.md').read_text()
    assert markdown.count('| segformer-b0 |') == 2 and '| icnet | 0.25 | 96x48 | 1 |' in markdown


def test_bench_models_compares_engines_in_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    out = tmp_path / 'models.json'
    assert cli.main(['bench', 'models', '--out', str(out), '--networks', 'icnet,segformer-b0',
                     '--widths', '0.25', '--sizes', '64x32', '--threads', '1', '--repeats', '1',
                     '--warmup', '0', '--engines', 'torch,onnxruntime,auto',
                     '--dynamic', '--precisions', 'fp32,fp16']) == 0
    rows = json.loads(out.read_text())['rows']
    keys = [(r['network'], r['engine'], r['engine_used'], r['graphs']) for r in rows
            if r['precision'] == 'fp32']
    assert all(r['engine_used'] != 'torch' for r in rows if r['precision'] != 'fp32')
    auto = 'openvino' if engine_version('openvino') else 'onnxruntime'
    assert keys == [('icnet', 'torch', 'torch', 'static'),
                    ('icnet', 'onnxruntime', 'onnxruntime', 'static'),
                    ('icnet', 'auto', auto, 'static'),
                    ('segformer-b0', 'torch', 'torch', 'static'),
                    ('segformer-b0', 'onnxruntime', 'onnxruntime', 'static'),
                    ('segformer-b0', 'onnxruntime dynamic', 'onnxruntime', 'dynamic'),
                    ('segformer-b0', 'auto', auto, 'static'),
                    ('segformer-b0', 'auto dynamic', auto, 'dynamic')]
    for row in rows:  # fp16 on a CPU: skipped with one line, or bf16/fp16 rows of OpenVINO
        assert row['network_ms'] > 0 and row['refiner_speedup_vs_torch'] > 0
        assert (row['build_s'] > 0) == (row['engine'] != 'torch')
    markdown = (tmp_path / 'models.md').read_text()
    assert f'| auto ({auto}) |' in markdown
    assert cli.main(['bench', 'models', '--out', str(out), '--networks', 'icnet', '--widths',
                     '0.25', '--sizes', '64x32', '--threads', '1', '--repeats', '1', '--warmup',
                     '0', '--engines', f'{auto},auto']) == 0
    measured, alias = json.loads(out.read_text())['rows']  # auto is not timed twice
    assert alias['engine'] == 'auto' and alias['engine_used'] == measured['engine'] == auto
    assert alias['network_ms'] == measured['network_ms']


@pytest.mark.parametrize('option, value, message', [
    ('--networks', 'icnet,segformer-b9', 'unknown SegFormer variant'),
    ('--threads', 'two', 'is not a comma list of thread counts'),
    ('--sizes', '64', 'is not WIDTHxHEIGHT'),
    ('--batch', '0', 'must be at least 1'),
    ('--engines', 'torch,tflite', "'tflite' is not one of"),
])
def test_bench_models_bad_options(tmp_path, capsys, option, value, message):
    assert cli.main(['bench', 'models', '--out', str(tmp_path / 'm.json'), option, value]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_bench_models_batch_column_for_networks_with_predict_batch(tmp_path):
    out = tmp_path / 'models.json'
    assert cli.main(['bench', 'models', '--out', str(out), '--networks', 'icnet,segformer-b0',
                     '--widths', '0.25', '--sizes', '64x32', '--threads', '1', '--repeats', '1',
                     '--warmup', '0', '--batch', '3']) == 0
    icnet, segformer = json.loads(out.read_text())['rows']
    assert icnet['batch'] == 3 and icnet['network_batch_ms_per_frame'] > 0
    assert 'batch' not in segformer  # no predict_batch: nothing claimed
    markdown = (tmp_path / 'models.md').read_text()
    assert 'network ms per frame, 3 in one call' in markdown
    assert markdown.splitlines()[-1].endswith('| - |')


def bench_hf(tmp_path, model_dir):
    out = tmp_path / 'bench'
    assert cli.main(['bench', '--quick', '--out', str(out), '--synth-snippets', '1',
                     '--resolution', '128x64', '--backend', f'hf:{model_dir}', '--refiner', '',
                     '--operating-points', 'EVS02', 'EVS03', '--figure-propagations', '0',
                     '--device', 'cpu']) == 0
    return json.loads((out / 'bench.json').read_text()), (out / 'bench.md').read_text()


def test_bench_tables_with_a_random_segformer(tmp_path):
    model_dir = save_random_segformer('b0', str(tmp_path / 'segformer-b0'))
    assert (tmp_path / 'segformer-b0' / RANDOM_MARKER).is_file()
    report, markdown = bench_hf(tmp_path, model_dir)
    assert [e['name'] for e in report['operating_points']] == ['PERFRAME', 'EVS02', 'EVS03']
    assert [row['case'] for row in report['table1']['rows']] == ['S=2']
    assert report['class_names'][:2] == ['road', 'sidewalk']
    assert len(report['accuracy_notes']) == 1 and 'random weights' in markdown
    assert 'not the 19 Cityscapes classes' not in markdown


def test_bench_says_when_the_classes_are_not_cityscapes(tmp_path):
    names = {0: 'floor', 1: 'wall', 2: 'robot'}
    model_dir = save_tiny_model('segformer', tmp_path / 'own', id2label=names)
    report, markdown = bench_hf(tmp_path, model_dir)
    assert report['class_names'] == ['floor', 'wall', 'robot']
    assert 'not the 19 Cityscapes classes (floor, wall, robot)' in markdown
    assert 'random weights' not in markdown
