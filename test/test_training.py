"""Training smoke tests on a tiny hand-made dataset: losses, checkpoints, resume, Refiner pairs."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evs_ros.data.cityscapes import write_snippet
from evs_ros.models import load_backend, load_refiner
from evs_ros.models.checkpoint import load_checkpoint
from evs_ros.models.icnet import ICNet, IcnetModel
from evs_ros.training.data import RefinerPairs
from evs_ros.training.sources import layout_sequences
from evs_ros.training.losses import (CASCADE_WEIGHTS, cascade_loss, masked_segmentation_loss,
                                     segmentation_loss)
from evs_ros.tools.cli import main as evs_main

torch.set_num_threads(1)


def _frames(count=4, height=48, width=96, shift_px=2):
    """Draw moving stripes: class = stripe index (0..3), texture so DIS has something to track."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width + count * shift_px, 3), dtype=np.uint8)
    labels = (np.arange(width + count * shift_px) // 24 % 4).astype(np.uint8)
    frames = []
    for index in range(count):
        start = count * shift_px - index * shift_px
        image = texture[:, start:start + width].copy()
        image[..., 0] = labels[start:start + width] * 60  # class visible in the blue channel
        frames.append(SimpleNamespace(image_bgr=image, labels=np.tile(
            labels[start:start + width], (height, 1))))
    return frames


@pytest.fixture(scope='module')
def dataset_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny'))
    write_snippet(root, 'train', 'tiny', 0, _frames())
    return root


def test_loss_ignores_255_and_weights_cascade():
    labels = torch.full((1, 8, 8), 255, dtype=torch.long)
    labels[0, :4] = 1
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1] = 5.0
    confident = segmentation_loss(logits, labels)
    assert confident.item() < 0.02  # only the class-1 half counts, predicted right
    outputs = {key: logits for key in CASCADE_WEIGHTS}
    assert cascade_loss(outputs, labels).item() == pytest.approx(
        sum(CASCADE_WEIGHTS.values()) * confident.item(), rel=1e-5)


def test_masked_loss_counts_pixels_by_mask_plus_outside_weight():
    labels = torch.zeros((1, 8, 8), dtype=torch.long)
    labels[0, :, 4:] = 255  # right half ignored
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 0, :2] = 4.0  # top half right (class 0), bottom half wrong
    logits[0, 1, 2:] = 4.0
    mask = torch.zeros(1, 4, 4)
    mask[0, :2] = 1.0  # mask covers the top half only
    right = masked_segmentation_loss(logits, labels, mask, outside_weight=0.0)
    assert right.item() < 0.02  # only masked pixels count, and they are right
    everywhere = masked_segmentation_loss(logits, labels, torch.ones(1, 4, 4), 0.0)
    assert everywhere.item() == pytest.approx(segmentation_loss(logits, labels).item(), rel=1e-5)
    mask[0, :, 2:] = 1.0  # ignored pixels never count, whatever the mask says
    assert masked_segmentation_loss(logits, labels, mask, 0.0).item() == pytest.approx(
        right.item(), rel=1e-5)
    assert masked_segmentation_loss(logits, labels, mask, 1.0).item() > 1.0


def test_train_icnet_resume_and_load(dataset_root, tmp_path):
    out = str(tmp_path / 'icnet.pt')
    common = ['train', 'icnet', '--data', dataset_root, '--out', out, '--batch', '2',
              '--crop', '33x65', '--width-mult', '0.25', '--device', 'cpu']
    assert evs_main(common + ['--epochs', '1', '--val-split', 'train', '--val-limit', '2']) == 0
    first = load_checkpoint(out, expected_arch='icnet')
    assert first['meta']['epoch'] == 1 and np.isfinite(first['meta']['loss'])
    assert 0.0 <= first['meta']['val_miou'] <= 1.0
    assert evs_main(common + ['--epochs', '2', '--resume']) == 0
    second = load_checkpoint(out)
    assert second['meta']['epoch'] == 2 and second['meta']['val_miou'] is None  # no 'val' split
    changed = [not torch.equal(first['state_dict'][k], v)
               for k, v in second['state_dict'].items() if v.is_floating_point()]
    assert any(changed)
    model = load_backend(f'icnet:{out}', device='cpu')
    prediction = model.predict(np.zeros((48, 96, 3), np.uint8))
    assert prediction.probs.shape == (19, 12, 24)


def test_refiner_pairs_and_training(dataset_root, tmp_path):
    torch.manual_seed(0)
    icnet = ICNet(num_classes=19, width_mult=0.25).eval()
    pairs = RefinerPairs(layout_sequences(dataset_root, 'train'), (48, 96),
                         IcnetModel(icnet, 'cpu'), max_gap=3)
    assert len(pairs) == 3  # labelled frames 1..3 have a predecessor
    data, probs, features, mask, labels = pairs[2]
    assert data.shape == (3, 48, 96) and labels.shape == (12, 24)  # at the probs' resolution
    assert probs.shape == (19, 12, 24) and features.shape == (64, 3, 6)
    assert mask.shape == (12, 24) and 0.0 <= mask.min() and mask.max() <= 1.0
    torch.testing.assert_close(probs.sum(0), torch.ones(12, 24), atol=1e-4, rtol=0)
    icnet_path = str(tmp_path / 'teacher.pt')
    from evs_ros.models.checkpoint import save_checkpoint
    save_checkpoint(icnet_path, 'icnet', {'num_classes': 19, 'width_mult': 0.25}, icnet)
    out = str(tmp_path / 'refiner.pt')
    assert evs_main(['train', 'refiner', '--data', dataset_root, '--out', out, '--icnet',
                     icnet_path, '--epochs', '1', '--batch', '2', '--crop', '48x96',
                     '--width-mult', '0.25', '--device', 'cpu']) == 0
    checkpoint = load_checkpoint(out, expected_arch='refiner')
    assert checkpoint['config']['residual'] is True  # the default of evs train refiner
    refiner = load_refiner(out, device='cpu')
    refined = refiner.refine(np.zeros((48, 96, 3), np.uint8), probs.numpy(), features.numpy())
    assert refined.shape == (19, 12, 24)
