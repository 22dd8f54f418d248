"""Backend SPECs end to end: checkpoints, TorchScript/ONNX export equivalence, python: backends."""

import os

import numpy as np
import pytest
import torch

from evs_ros.models import load_backend, load_refiner
from evs_ros.models.backends import DEFAULT_ICNET, DEFAULT_REFINER, split_spec
from evs_ros.models.checkpoint import build_network, load_checkpoint, save_checkpoint
from evs_ros.models.icnet import ICNet
from evs_ros.models.refiner import RefinerNet
from evs_ros.tools.cli import main as evs_main

torch.set_num_threads(1)
NUM_CLASSES = 6
IMAGE = np.random.default_rng(0).integers(0, 256, (70, 130, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def icnet_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'icnet.pt')
    config = {'num_classes': NUM_CLASSES, 'width_mult': 0.25}
    save_checkpoint(path, 'icnet', config, ICNet(**config), class_names=list('abcdef'),
                    meta={'epochs': 0})
    return path


def _check_prediction(prediction, height=70, width=130):
    assert prediction.probs.dtype == np.float32
    assert prediction.probs.shape == (NUM_CLASSES, (height - 1) // 4 + 1, (width - 1) // 4 + 1)
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0, atol=1e-5)


def test_checkpoint_round_trip(icnet_checkpoint):
    checkpoint = load_checkpoint(icnet_checkpoint, expected_arch='icnet')
    assert checkpoint['class_names'] == list('abcdef') and checkpoint['meta'] == {'epochs': 0}
    network = build_network(checkpoint)
    for key, value in network.state_dict().items():
        assert torch.equal(value, checkpoint['state_dict'][key])
    with pytest.raises(ValueError, match="expected 'refiner'"):
        load_checkpoint(icnet_checkpoint, expected_arch='refiner')


def test_bad_checkpoints_give_clear_errors(tmp_path):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a readable torch checkpoint'):
        load_checkpoint(str(junk))
    plain = tmp_path / 'plain.pt'
    torch.save({'weights': torch.zeros(1)}, plain)
    with pytest.raises(ValueError, match='not an evs_ros checkpoint'):
        load_checkpoint(str(plain))
    with pytest.raises(FileNotFoundError):
        load_backend(f'icnet:{tmp_path / "missing.pt"}')


def test_spec_errors():
    for spec in ('icnet', 'tensorrt:x.engine', 'onnx:', 'no-colon'):
        with pytest.raises(ValueError, match='SPEC'):
            split_spec(spec)
    with pytest.raises(ValueError, match='MODULE:FACTORY'):
        load_backend('python:nomodule')


def test_default_weights_missing_is_explained(monkeypatch, tmp_path):
    from evs_ros.models import backends
    monkeypatch.setattr(backends, 'DEFAULT_ICNET', str(tmp_path / 'icnet_synth.pt'))
    with pytest.raises(FileNotFoundError, match='evs train'):
        load_backend('icnet:default')


def test_default_refiner_missing_is_explained(monkeypatch, tmp_path):
    from evs_ros.models import backends
    monkeypatch.setattr(backends, 'DEFAULT_REFINER', str(tmp_path / 'refiner_synth.pt'))
    with pytest.raises(FileNotFoundError, match='evs train'):
        load_refiner('default')


def test_shipped_weights_load_and_predict():
    assert os.path.exists(DEFAULT_ICNET) and os.path.exists(DEFAULT_REFINER), \
        'shipped weights missing: scripts/train_shipped_weights.sh reproduces them'
    model = load_backend('icnet:default', device='cpu')
    assert model.num_classes == 19
    prediction = model.predict(np.zeros((70, 130, 3), np.uint8))
    assert prediction.probs.shape == (19, 18, 33) and prediction.features is not None
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0, atol=1e-5)
    refiner = load_refiner('default', device='cpu')
    refined = refiner.refine(np.zeros((70, 130, 3), np.uint8), prediction.probs,
                             prediction.features)
    assert refined.shape == prediction.probs.shape


def test_icnet_backend_predicts(icnet_checkpoint):
    model = load_backend(f'icnet:{icnet_checkpoint}', device='cpu')
    assert model.num_classes == NUM_CLASSES and model.class_names == tuple('abcdef')
    prediction = model.predict(IMAGE)
    _check_prediction(prediction)
    assert prediction.features.shape == (64, 5, 9)


@pytest.mark.parametrize('fmt, suffix', [('onnx', '.onnx'), ('torchscript', '.ts')])
def test_exported_backends_match_checkpoint(tmp_path, icnet_checkpoint, fmt, suffix):
    out_path = str(tmp_path / f'icnet{suffix}')
    args = ['export', '--backend', f'icnet:{icnet_checkpoint}', '--format', fmt,
            '--out', out_path, '--size', '70x130']
    assert evs_main(args) == 0
    reference = load_backend(f'icnet:{icnet_checkpoint}', device='cpu').predict(IMAGE)
    exported = load_backend(f'{fmt}:{out_path}', device='cpu')
    assert exported.num_classes == NUM_CLASSES
    prediction = exported.predict(IMAGE)
    _check_prediction(prediction)
    np.testing.assert_allclose(prediction.probs, reference.probs, atol=1e-4)
    np.testing.assert_allclose(prediction.features, reference.features, atol=1e-3)
    other_size = exported.predict(IMAGE[:50, :90])  # resized to the exported 70x130
    assert other_size.probs.shape == prediction.probs.shape


def test_python_backend_has_no_features():
    model = load_backend('python:fake_models:make_model')
    prediction = model.predict(IMAGE)
    assert prediction.features is None
    assert prediction.probs.shape[0] == model.num_classes == 19
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0)


def test_refiner_loading(tmp_path):
    assert load_refiner('') is None
    path = str(tmp_path / 'refiner.pt')
    config = {'num_classes': NUM_CLASSES, 'feature_channels': 64, 'width_mult': 0.25}
    save_checkpoint(path, 'refiner', config, RefinerNet(**config))
    refiner = load_refiner(path, device='cpu')
    probs = np.full((NUM_CLASSES, 18, 33), 1.0 / NUM_CLASSES, np.float32)
    refined = refiner.refine(IMAGE, probs, np.zeros((64, 5, 9), np.float32))
    assert refined.shape == probs.shape
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-5)


def test_onnx_falls_back_to_cv2_dnn(tmp_path, icnet_checkpoint, monkeypatch):
    out_path = str(tmp_path / 'icnet.onnx')
    assert evs_main(['export', '--backend', f'icnet:{icnet_checkpoint}', '--format', 'onnx',
                     '--out', out_path, '--size', '70x130']) == 0
    monkeypatch.setitem(__import__('sys').modules, 'onnxruntime', None)  # import fails
    model = load_backend(f'onnx:{out_path}', device='cpu')
    assert model.engine == 'opencv' and model.dnn is not None
    reference = load_backend(f'icnet:{icnet_checkpoint}', device='cpu').predict(IMAGE)
    np.testing.assert_allclose(model.predict(IMAGE).probs, reference.probs, atol=1e-4)


def test_one_backend_table_feeds_the_parser_the_help_the_loaders_and_readme(capsys):
    """evs_ros/config/backends.py is the only list of SPEC kinds (issue 18, item 7)."""
    import importlib

    from evs_ros.config import ModelConfig, PARAMETER_INFO
    from evs_ros.config.backends import BACKENDS, ENGINE_SUPPORT, markdown_table, spec_usage
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               'README.md'), encoding='utf-8').read()
    assert '\n'.join(markdown_table()) in readme
    for row in BACKENDS:
        assert row.engines in ENGINE_SUPPORT
        assert row.usage in PARAMETER_INFO['model.backend'].help
        if row.loader:
            module, _, function = row.loader.partition(':')
            assert callable(getattr(importlib.import_module(module), function))
    with pytest.raises(ValueError, match=spec_usage().replace('|', r'\|')):
        split_spec('caffe:x')
    with pytest.raises(SystemExit):
        evs_main(['run', '--help'])
    assert spec_usage() in ' '.join(capsys.readouterr().out.split())
    assert ModelConfig().backend.split(':')[0] in [row.kind for row in BACKENDS]
