"""ICNet topology vs the official deploy prototxt, Caffe Interp semantics and the numpy wrapper."""

import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from evs_ros.models.icnet import (DEPLOY_POOL_GEOMETRY, ICNet, IcnetModel, caffe_shrink,
                                  caffe_zoom, check_image, output_size, padded_size,
                                  pool_geometry, preprocess_bgr, prototxt_name_map)

PROTOTXT_CANDIDATES = (
    os.environ.get('EVS_ICNET_PROTOTXT', ''),
    # the official deploy prototxt ships in the repository (reference/icnet/)
    os.path.join(os.path.dirname(__file__), '..', 'reference', 'icnet',
                 'icnet_cityscapes_bnnomerge.prototxt'),
)

torch.set_num_threads(1)


def _prototxt_convolutions():
    path = next((p for p in PROTOTXT_CANDIDATES if p and os.path.isfile(p)), None)
    assert path is not None, 'reference/icnet/icnet_cityscapes_bnnomerge.prototxt is missing'
    text = open(path).read()
    layers = {}
    for block in re.split(r'\nlayer\s*\{', text)[1:]:
        if 'type: "Convolution"' not in block:
            continue
        name = re.search(r'name:\s*"([^"]+)"', block).group(1)

        def field(key, default, block=block):
            match = re.search(key + r':\s*(\w+)', block)
            return match.group(1) if match else default
        layers[name] = {'out': int(field('num_output', 0)), 'kernel': int(field('kernel_size', 1)),
                        'stride': int(field('stride', 1)), 'pad': int(field('pad', 0)),
                        'dilation': int(field('dilation', 1)),
                        'bias': field('bias_term', 'true') == 'true'}
    return layers


def test_every_prototxt_convolution_matches_a_module():
    network = ICNet(num_classes=19, aux_heads=False)
    modules = dict(network.named_modules())
    by_caffe_name = {caffe: path for path, caffe in prototxt_name_map(network).items()}
    layers = _prototxt_convolutions()
    assert set(layers) == set(by_caffe_name)
    for name, spec in layers.items():
        module = modules[by_caffe_name[name]]
        conv = module if isinstance(module, nn.Conv2d) else module[0]
        assert conv.out_channels == spec['out'], name
        assert conv.kernel_size == (spec['kernel'],) * 2, name
        assert conv.stride == (spec['stride'],) * 2, name
        assert conv.padding == (spec['pad'],) * 2, name
        assert conv.dilation == (spec['dilation'],) * 2, name
        assert (conv.bias is not None) == spec['bias'], name


@pytest.mark.parametrize('width_mult', [1.0, 0.5, 0.25])
def test_forward_shapes_and_aux_heads(width_mult):
    network = ICNet(num_classes=7, width_mult=width_mult).eval()
    with torch.no_grad():
        out = network(torch.randn(1, 3, 65, 129), return_aux=True)
    assert out['logits'].shape == (1, 7, 17, 33)  # 1/4: (65 - 1) / 4 + 1
    assert out['logits_sub24'].shape == (1, 7, 9, 17)  # 1/8
    assert out['logits_sub4'].shape == (1, 7, 5, 9)  # 1/16
    assert out['features'].shape == (1, network.feature_channels, 5, 9)  # conv3_1, 1/16


def test_reduced_width_scales_channels_and_cost():
    full, quarter = ICNet(width_mult=1.0), ICNet(width_mult=0.25)
    assert (full.feature_channels, quarter.feature_channels) == (256, 64)
    count = [sum(p.numel() for p in net.parameters()) for net in (full, quarter)]
    assert count[1] < count[0] / 8
    with pytest.raises(ValueError):
        ICNet(width_mult=0)


def test_caffe_interp_size_rules_and_align_corners():
    x = torch.arange(2 * 9 * 17, dtype=torch.float32).view(1, 2, 9, 17)
    small = caffe_shrink(x, 2)
    assert small.shape[-2:] == (5, 9)
    assert torch.allclose(small, x[..., ::2, ::2])  # align_corners: every other pixel exactly
    big = caffe_zoom(x, 4)
    assert big.shape[-2:] == (33, 65)
    assert torch.allclose(big[..., ::4, ::4], x)
    assert torch.allclose(big[..., 0, 2], (x[..., 0, 0] + x[..., 0, 1]) / 2)


def test_pool_geometry_reproduces_deploy_heights_and_bins():
    for bins, (kernel_h, _, stride_h, _) in DEPLOY_POOL_GEOMETRY.items():
        assert pool_geometry(33, bins) == (kernel_h, stride_h)
    for size in range(1, 80):
        for bins in (1, 2, 3, 6):
            kernel, stride = pool_geometry(size, bins)
            cells = (size - kernel) // stride + 1
            assert cells == min(bins, size) and (size - kernel) % stride == 0


def test_deploy_size_pyramid_pools_to_1_2_3_6():
    feature = torch.randn(1, 4, 33, 65)
    for bins, (kernel_h, kernel_w, stride_h, stride_w) in DEPLOY_POOL_GEOMETRY.items():
        pooled = torch.nn.functional.avg_pool2d(feature, (kernel_h, kernel_w),
                                                (stride_h, stride_w))
        assert pooled.shape[-2:] == (bins, bins)


def test_preprocess_subtracts_bgr_means_without_scaling():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 2] = 200, 10
    data = preprocess_bgr(torch.from_numpy(image)[None])
    assert data.shape == (1, 3, 2, 3)
    assert data[0, 0, 0, 0].item() == pytest.approx(200 - 103.939, abs=1e-4)
    assert data[0, 1, 0, 0].item() == pytest.approx(-116.779, abs=1e-4)
    assert data[0, 2, 0, 0].item() == pytest.approx(10 - 123.68, abs=1e-4)


@pytest.mark.parametrize('height, width', [(65, 129), (70, 130), (48, 64)])
def test_icnet_model_predict_any_size(height, width):
    torch.manual_seed(0)
    model = IcnetModel(ICNet(num_classes=5, width_mult=0.25), device='cpu')
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    prediction = model.predict(image)
    assert prediction.probs.dtype == np.float32
    assert prediction.probs.shape == (5, output_size(height, 4), output_size(width, 4))
    assert prediction.features.shape == (64, output_size(height, 16), output_size(width, 16))
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0, atol=1e-5)
    flipped = model.predict(image[:, ::-1])  # non-contiguous views are accepted
    assert flipped.probs.shape == prediction.probs.shape


def test_predict_on_32k_plus_1_size_equals_plain_forward():
    torch.manual_seed(0)
    network = ICNet(num_classes=4, width_mult=0.25).eval()
    model = IcnetModel(network, device='cpu')
    image = np.random.default_rng(2).integers(0, 256, (65, 97, 3), dtype=np.uint8)
    assert (padded_size(65), padded_size(97)) == (65, 97)
    with torch.no_grad():
        out = network(preprocess_bgr(torch.from_numpy(image)[None]))
    expected = torch.softmax(out['logits'], dim=1)[0].numpy()
    np.testing.assert_allclose(model.predict(image).probs, expected, atol=1e-6)


def test_predict_batch_equals_one_call_per_frame():
    """runtime.keyframe_batch: keyframes of several cameras in one call give each its own."""
    torch.manual_seed(0)
    model = IcnetModel(ICNet(num_classes=5, width_mult=0.25).eval(), device='cpu')
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (65, 129, 3), dtype=np.uint8) for _ in range(3)]
    batch = model.predict_batch(frames)
    assert len(batch) == 3
    for frame, batched in zip(frames, batch):
        single = model.predict(frame)
        np.testing.assert_allclose(batched.probs, single.probs, atol=1e-5)
        np.testing.assert_allclose(batched.features, single.features, atol=1e-5)
    assert not np.allclose(batch[0].probs, batch[1].probs)


def test_check_image_rejects_bad_input():
    with pytest.raises(ValueError, match='uint8'):
        check_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match='BGR'):
        check_image(np.zeros((8, 8), np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_fp16_matches_cpu_fp32():
    torch.manual_seed(0)
    network = ICNet(num_classes=5, width_mult=0.25).eval()
    image = np.random.default_rng(3).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    cpu = IcnetModel(network, device='cpu').predict(image)
    gpu = IcnetModel(ICNet(num_classes=5, width_mult=0.25), device='cuda', fp16=True)
    gpu.network.load_state_dict(network.state_dict())
    gpu.network.half()
    np.testing.assert_allclose(gpu.predict(image).probs, cpu.probs, atol=2e-2)


def test_deploy_input_reaches_prototxt_feature_sizes():
    network = ICNet(num_classes=3, width_mult=0.25, aux_heads=False).eval()
    seen = {}
    network.pyramid.register_forward_hook(lambda m, i, o: seen.update(conv5_3=i[0].shape[-2:]))
    with torch.no_grad():
        out = network(torch.zeros(1, 3, 1025, 2049))
    assert tuple(seen['conv5_3']) == (33, 65)  # DEPLOY_POOL_GEOMETRY applies
    assert out['features'].shape[-2:] == (65, 129)  # conv3_1
    assert out['logits'].shape[-2:] == (257, 513)  # conv6_cls before conv6_interp
