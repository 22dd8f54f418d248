"""Refiner (paper §3.5, Fig. 4): shapes, use of its inputs, cost relative to ICNet."""

import numpy as np
import pytest
import torch

from evs_ros.models.icnet import ICNet, IcnetModel
from evs_ros.models.refiner import RefinerNet, TorchRefiner

torch.set_num_threads(1)
NUM_CLASSES = 5


def _inputs(height=70, width=130, feature_channels=64, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    logits = rng.standard_normal((NUM_CLASSES, (height - 1) // 4 + 1, (width - 1) // 4 + 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    features = rng.standard_normal((feature_channels, (height - 1) // 16 + 1,
                                    (width - 1) // 16 + 1)).astype(np.float32)
    return image, probs.astype(np.float32), features


@pytest.mark.parametrize('feature_channels', [64, 0])
def test_refine_returns_probs_at_warped_shape(feature_channels):
    torch.manual_seed(0)
    refiner = TorchRefiner(RefinerNet(NUM_CLASSES, feature_channels, width_mult=0.25), 'cpu')
    image, probs, features = _inputs(feature_channels=feature_channels or 64)
    refined = refiner.refine(image, probs, features if feature_channels else None)
    assert refined.dtype == np.float32 and refined.shape == probs.shape
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-5)
    resized = refiner.refine(image, probs[:, :9, :20], None)  # any probs size, features missing
    assert resized.shape == (NUM_CLASSES, 9, 20)


def test_refiner_output_depends_on_warped_probs_and_features():
    torch.manual_seed(0)
    refiner = TorchRefiner(RefinerNet(NUM_CLASSES, 64, width_mult=0.25), 'cpu')
    image, probs, features = _inputs()
    base = refiner.refine(image, probs, features)
    other_probs = refiner.refine(image, np.roll(probs, 1, axis=0), features)
    other_features = refiner.refine(image, probs, -features)
    assert np.abs(base - other_probs).max() > 1e-4
    assert np.abs(base - other_features).max() > 1e-4


def test_untrained_residual_refiner_returns_the_warped_probs():
    torch.manual_seed(0)
    refiner = TorchRefiner(RefinerNet(NUM_CLASSES, 64, 0.25, residual=True), 'cpu')
    image, probs, features = _inputs()
    np.testing.assert_allclose(refiner.refine(image, probs, features), probs, atol=1e-5)
    other = refiner.refine(image, np.roll(probs, 1, axis=0), features)
    np.testing.assert_allclose(other, np.roll(probs, 1, axis=0), atol=1e-5)


def test_residual_refiner_corrects_the_prior():
    torch.manual_seed(0)
    network = RefinerNet(NUM_CLASSES, 64, 0.25, residual=True)
    torch.nn.init.normal_(network.cls.weight, std=0.5)  # a trained correction is non-zero
    image, probs, features = _inputs()
    refined = TorchRefiner(network, 'cpu').refine(image, probs, features)
    assert np.abs(refined - probs).max() > 1e-3
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-5)


def test_refiner_consumes_icnet_features():
    torch.manual_seed(0)
    icnet = IcnetModel(ICNet(NUM_CLASSES, width_mult=0.25), 'cpu')
    refiner = TorchRefiner(RefinerNet(NUM_CLASSES, icnet.feature_channels, 0.25), 'cpu')
    image = _inputs()[0]
    prediction = icnet.predict(image)
    refined = refiner.refine(image, prediction.probs, prediction.features)
    assert refined.shape == prediction.probs.shape


def _conv_macs(network, data, *extra):
    """Multiply-accumulates of all convolutions in one forward pass."""
    total = [0]

    def hook(module, inputs, output):
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        total[0] += output.numel() * kernel // module.groups

    handles = [m.register_forward_hook(hook) for m in network.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        network(data, *extra)
    for handle in handles:
        handle.remove()
    return total[0]


def test_refiner_is_much_cheaper_than_icnet():
    data = torch.zeros(1, 3, 129, 257)
    icnet = ICNet(19, aux_heads=False).eval()
    refiner = RefinerNet(19, icnet.feature_channels).eval()
    probs = torch.zeros(1, 19, 33, 65)
    features = torch.zeros(1, 256, 9, 17)
    assert _conv_macs(refiner, data, probs, features) < 0.5 * _conv_macs(icnet, data)
