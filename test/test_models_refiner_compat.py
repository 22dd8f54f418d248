"""Refiners for any network.

`evs train refiner --backend SPEC` with and without features, the checkpoint's record of classes
and feature channels, and the pairing rules of evs_ros.models.loading (explicit mismatch refused
with the reason, the shipped default turned off with a warning) in the library and in `evs run`.
"""

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evs_ros.config import ModelConfig
from evs_ros.data.cityscapes import write_snippet
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.data.video import VideoWriter
from evs_ros.models.backends import DEFAULT_REFINER
from evs_ros.models.checkpoint import load_checkpoint, save_checkpoint
from evs_ros.models.loading import ModelMismatchError, load_models, refiner_mismatch
from evs_ros.models.refiner import RefinerNet
from evs_ros.tools.cli import main as evs_main
from stripes import moving_stripes
from tiny_hf import FEATURE_CHANNELS, save_tiny_model

torch.set_num_threads(1)
OWN_NAMES = {0: 'floor', 1: 'wall', 2: 'robot', 3: 'person', 4: 'sky'}
CITYSCAPES_PYTHON = 'python:fake_models:make_model'          # 19 classes, no features
THREE_CLASSES_PYTHON = 'python:fake_class_models:make_warehouse_robot'
HEIGHT, WIDTH = 48, 96


def stripes(count=4, shift_px=2):
    """Frames of moving stripes labelled 0..3 (stripe index), textured so DIS can track them."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (HEIGHT, WIDTH + count * shift_px, 3), dtype=np.uint8)
    return moving_stripes(texture, count, shift_px)


@pytest.fixture(scope='module')
def dataset_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('stripes'))
    write_snippet(root, 'train', 'stripes', 0, stripes())
    return root


@pytest.fixture(scope='module')
def segformer_dir(tmp_path_factory):
    return save_tiny_model('segformer', tmp_path_factory.mktemp('segformer'), id2label=OWN_NAMES)


def train_refiner(dataset_root, backend, out):
    return evs_main(['train', 'refiner', '--data', dataset_root, '--out', str(out), '--backend',
                     backend, '--epochs', '1', '--batch', '2', '--crop', f'{HEIGHT}x{WIDTH}',
                     '--width-mult', '0.25', '--device', 'cpu'])


def test_refiner_for_a_segformer_records_its_classes_and_features(dataset_root, segformer_dir,
                                                                  tmp_path):
    backend = f'hf:{segformer_dir}'
    out = tmp_path / 'refiner_segformer.pt'
    assert train_refiner(dataset_root, backend, out) == 0
    checkpoint = load_checkpoint(str(out), expected_arch='refiner')
    assert checkpoint['class_names'] == list(OWN_NAMES.values())
    assert checkpoint['config']['num_classes'] == 5
    assert checkpoint['config']['feature_channels'] == FEATURE_CHANNELS['segformer']
    assert checkpoint['meta']['teacher_backend'] == backend
    model, refiner = load_models(ModelConfig(backend=backend, refiner=str(out), device='cpu'))
    assert refiner.class_names == model.class_names and refiner.num_classes == 5
    assert refiner.feature_channels == model.feature_channels == FEATURE_CHANNELS['segformer']
    frame = stripes()[0].image_bgr
    prediction = model.predict(frame)
    refined = refiner.refine(frame, prediction.probs, prediction.features)
    assert refined.shape == prediction.probs.shape
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-4)


def test_refiner_for_a_network_without_features(dataset_root, tmp_path):
    out = tmp_path / 'refiner_python.pt'
    assert train_refiner(dataset_root, CITYSCAPES_PYTHON, out) == 0
    checkpoint = load_checkpoint(str(out), expected_arch='refiner')
    assert checkpoint['config']['feature_channels'] == 0
    assert checkpoint['class_names'] == list(CLASS_NAMES)
    model, refiner = load_models(ModelConfig(backend=CITYSCAPES_PYTHON, refiner=str(out),
                                             device='cpu'))
    assert model.feature_channels is None and refiner.feature_channels == 0
    frame = stripes()[1].image_bgr
    assert refiner.refine(frame, model.predict(frame).probs, None).shape == (19, 12, 24)


def test_labels_the_network_cannot_predict_are_refused(dataset_root, tmp_path, capsys):
    out = tmp_path / 'refiner.pt'
    assert train_refiner(dataset_root, THREE_CLASSES_PYTHON, out) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert 'class id 3' in error and 'predicts 3 classes' in error
    assert not out.exists()


def network(num_classes=19, names=CLASS_NAMES, feature_channels=None):
    return SimpleNamespace(num_classes=num_classes, class_names=tuple(names),
                           feature_channels=feature_channels)


def refiner(num_classes=19, names=CLASS_NAMES, feature_channels=0):
    return SimpleNamespace(num_classes=num_classes, class_names=tuple(names) if names else None,
                           feature_channels=feature_channels)


@pytest.mark.parametrize('given, wanted, reason', [
    (network(5, OWN_NAMES.values()), refiner(), 'it predicts 19 classes, the network 5'),
    (network(names=CLASS_NAMES[::-1]), refiner(),
     "class 0 is 'road' for the Refiner and 'bicycle' for the network"),
    (network(feature_channels=32), refiner(feature_channels=128),
     'it takes 128 feature channels, the network gives 32'),
])
def test_mismatches_name_the_difference(given, wanted, reason):
    assert refiner_mismatch(given, wanted) == reason


@pytest.mark.parametrize('given, wanted', [
    (network(feature_channels=32), refiner(feature_channels=32)),
    (network(feature_channels=32), refiner(feature_channels=0)),    # features ignored
    (network(feature_channels=None), refiner(feature_channels=64)),  # zeros in their place
    (network(names=[n.upper().replace(' ', '_') for n in CLASS_NAMES]), refiner()),
    (network(), refiner(names=None)),                                # older checkpoint
    (network(3, ['class_0', 'class_1', 'class_2']), refiner(3, ['a', 'b', 'c'])),
])
def test_compatible_pairs(given, wanted):
    assert refiner_mismatch(given, wanted) is None


def test_explicit_refiner_of_another_network_is_refused(segformer_dir):
    config = ModelConfig(backend=f'hf:{segformer_dir}', refiner=DEFAULT_REFINER, device='cpu')
    with pytest.raises(ModelMismatchError) as error:
        load_models(config)
    message = str(error.value)
    assert '\n' not in message and 'trained for another network' in message
    assert 'it predicts 19 classes, the network 5' in message


def test_shipped_refiner_with_another_network_turns_r_off_with_a_warning(segformer_dir, caplog):
    config = ModelConfig(backend=f'hf:{segformer_dir}', refiner='default', device='cpu')
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        model, refiner_model = load_models(config)
    assert refiner_model is None and model.num_classes == 5
    assert 'the shipped Refiner does not fit' in caplog.text
    assert f'evs train refiner --backend hf:{segformer_dir}' in caplog.text
    _, shipped = load_models(ModelConfig(backend='icnet:default', device='cpu'))
    assert shipped is not None  # the shipped pair still matches


def test_evs_run_refuses_or_warns(tmp_path, segformer_dir, caplog, capsys):
    video = str(tmp_path / 'clip.mp4')
    with VideoWriter(video, fps=10.0) as writer:
        for frame in stripes():
            writer.write(frame.image_bgr)
    common = ['run', video, '--backend', f'hf:{segformer_dir}', '--operating-point', 'EVS04',
              '--max-frames', '4', '--no-overlay']
    assert evs_main(common + ['--out', str(tmp_path / 'a'), '--refiner', DEFAULT_REFINER]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('evs run: error: model.refiner') and len(error.splitlines()) == 1
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        assert evs_main(common + ['--out', str(tmp_path / 'b'), '--refiner', 'default']) == 0
    assert 'the shipped Refiner does not fit' in caplog.text
    summary = json.loads((tmp_path / 'b' / 'summary.json').read_text())
    assert summary['refiner'] == '' and summary['refined'] == 0


def test_refiner_checkpoint_round_trips_names_and_channels(tmp_path):
    config = {'num_classes': 3, 'feature_channels': 24, 'width_mult': 0.25, 'residual': True}
    path = str(tmp_path / 'r.pt')
    save_checkpoint(path, 'refiner', config, RefinerNet(**config), class_names=['a', 'b', 'c'])
    checkpoint = load_checkpoint(path, expected_arch='refiner')
    assert checkpoint['config'] == config and checkpoint['class_names'] == ['a', 'b', 'c']
