"""Caffe weights without Caffe.

A minimal protobuf WRITER builds caffemodels with the real ICNet layer names and shapes, random
weights; conversion must reproduce independent references.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evs_ros.models.backends import load_backend
from evs_ros.models.caffe import (CaffeFormatError, icnet_from_caffemodel, load_caffemodel,
                                  parse_caffemodel)
from evs_ros.models.icnet import ICNet, preprocess_bgr, prototxt_name_map
from evs_ros.tools.cli import main as evs_main

torch.set_num_threads(1)
EPS = 1e-5


# --- protobuf wire-format writer (independent of the parser under test) ---------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray, legacy: bool = False) -> bytes:
    data = _len_field(5, np.asarray(array, '<f4').tobytes())
    if legacy:  # num/channels/height/width varints (fields 1..4)
        dims = (list(array.shape) + [1, 1, 1, 1])[:4]
        return b''.join(_varint(f << 3) + _varint(d) for f, d in zip((1, 2, 3, 4), dims)) + data
    shape = _len_field(1, b''.join(_varint(d) for d in array.shape))  # packed BlobShape.dim
    return _len_field(7, shape) + data


def _layer(name: str, kind: str, blobs, legacy: bool = False) -> bytes:
    if legacy:  # V1LayerParameter: name 4, blobs 6; NetParameter.layers = 2
        body = _len_field(4, name.encode()) + b''.join(_len_field(6, _blob(b, True))
                                                       for b in blobs)
        return _len_field(2, body)
    body = _len_field(1, name.encode()) + _len_field(2, kind.encode())
    body += b''.join(_len_field(7, _blob(b)) for b in blobs)
    return _len_field(100, body)


def _reference_network(seed: int = 0) -> ICNet:
    """Full-width deploy ICNet with random weights and random BN statistics."""
    torch.manual_seed(seed)
    network = ICNet(num_classes=19, aux_heads=False).eval()
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.weight.data = 0.5 + torch.rand(size, generator=generator)
            module.bias.data = 0.1 * torch.randn(size, generator=generator)
            module.running_mean.data = 0.1 * torch.randn(size, generator=generator)
            module.running_var.data = 0.5 + torch.rand(size, generator=generator)
    return network


def _caffemodel_bytes(network: ICNet, variant: str, input_scale=None, drop=(),
                      reshape=None) -> bytes:
    modules = dict(network.named_modules())
    out = _len_field(1, b'ICNet')
    if input_scale is not None:
        out += _layer('data_sub1', 'Scale', [np.asarray(input_scale, np.float32)])
    for path, name in prototxt_name_map(network).items():
        module = modules[path]
        if isinstance(module, torch.nn.Conv2d):
            layers = {name: [module.weight.detach().numpy(), module.bias.detach().numpy()]}
        else:
            conv, bn = module[0], module[1]
            weight = conv.weight.detach().numpy()
            stats = [t.detach().numpy().reshape(1, -1, 1, 1) for t in
                     (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
            if variant == 'bnnomerge':
                layers = {name: [weight], f'{name}/bn': stats}
            else:  # fold BN into conv weight + bias like icnet_cityscapes.caffemodel
                scale, shift, mean, var = (s.ravel() for s in stats)
                factor = scale / np.sqrt(var + EPS)
                layers = {name: [weight * factor[:, None, None, None], shift - mean * factor]}
        for layer_name, blobs in layers.items():
            if layer_name in drop:
                continue
            if reshape and layer_name == reshape:
                blobs = [blobs[0][:-1]] + blobs[1:]
            out += _layer(layer_name, 'BN' if layer_name.endswith('/bn') else 'Convolution',
                          blobs)
        out += _layer(f'{name}/relu', 'ReLU', [])  # layers without blobs are ignored
    return out


@pytest.fixture(scope='module')
def reference():
    return _reference_network()


@pytest.fixture(scope='module')
def data():
    image = np.random.default_rng(0).integers(0, 256, (65, 129, 3), dtype=np.uint8)
    return preprocess_bgr(torch.from_numpy(image)[None])


def _write(tmp_path, payload: bytes, name='icnet.caffemodel') -> str:
    path = tmp_path / name
    path.write_bytes(payload)
    return str(path)


def test_parser_reads_names_shapes_and_values(tmp_path):
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    payload = _layer('conv1', 'Convolution', [weight]) + _layer('relu', 'ReLU', [])
    payload += _layer('legacy', '', [weight[:, :, 0, 0]], legacy=True)
    blobs = parse_caffemodel(payload)
    assert set(blobs) == {'conv1', 'legacy'}
    np.testing.assert_array_equal(blobs['conv1'][0], weight)
    assert blobs['legacy'][0].shape == (4, 3, 1, 1)  # legacy num/channels/height/width
    np.testing.assert_array_equal(blobs['legacy'][0][:, :, 0, 0], weight[:, :, 0, 0])


def test_first_layer_matches_independent_conv_bn_relu(tmp_path, reference, data):
    path = _write(tmp_path, _caffemodel_bytes(reference, 'bnnomerge'))
    blobs = load_caffemodel(path)
    network, variant = icnet_from_caffemodel(path)
    assert variant == 'bnnomerge'
    weight = torch.from_numpy(blobs['conv1_sub1'][0])
    scale, shift, mean, var = (torch.from_numpy(b.ravel()) for b in blobs['conv1_sub1/bn'])
    conv = F.conv2d(data, weight, stride=2, padding=1)
    expected = torch.relu((conv - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + EPS)
                          * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))
    with torch.no_grad():
        got = network.conv1_sub1(data)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('variant', ['bnnomerge', 'merged'])
def test_converted_checkpoint_reproduces_reference(tmp_path, reference, data, variant):
    path = _write(tmp_path, _caffemodel_bytes(reference, variant))
    out_path = str(tmp_path / 'icnet.pt')
    assert evs_main(['convert', 'caffe', path, out_path]) == 0
    model = load_backend(f'icnet:{out_path}', device='cpu')
    with torch.no_grad():
        expected = reference(data)
        got = model.network(data)
    scale = expected['logits'].abs().max().item()
    torch.testing.assert_close(got['logits'], expected['logits'], atol=1e-4 * scale, rtol=1e-4)
    torch.testing.assert_close(got['features'], expected['features'], atol=1e-4, rtol=1e-4)


def test_data_sub1_scale_is_folded_into_first_convs(tmp_path, reference, data):
    input_scale = [0.5, 1.0, 2.0]
    path = _write(tmp_path, _caffemodel_bytes(reference, 'bnnomerge', input_scale=input_scale))
    network, _ = icnet_from_caffemodel(path)
    with torch.no_grad():
        expected = reference(data * torch.tensor(input_scale).view(1, 3, 1, 1))['logits']
        got = network(data)['logits']
    torch.testing.assert_close(got, expected, atol=1e-4 * expected.abs().max().item(), rtol=1e-4)


def test_training_caffemodel_keeps_aux_heads(tmp_path, data):
    torch.manual_seed(1)
    reference = ICNet(num_classes=19, aux_heads=True).eval()
    network, _ = icnet_from_caffemodel(_write(tmp_path, _caffemodel_bytes(reference, 'merged')))
    assert network.sub4_out is not None
    with torch.no_grad():
        expected = reference(data, return_aux=True)['logits_sub24']
        got = network(data, return_aux=True)['logits_sub24']
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_missing_layer_is_named(tmp_path, reference):
    path = _write(tmp_path, _caffemodel_bytes(reference, 'bnnomerge', drop=('conv3_sub1/bn',)))
    with pytest.raises(CaffeFormatError, match="'conv3_sub1/bn' is missing"):
        icnet_from_caffemodel(path)


def test_misshaped_blob_is_named(tmp_path, reference):
    payload = _caffemodel_bytes(reference, 'merged', reshape='conv_sub2')
    with pytest.raises(CaffeFormatError, match="'conv_sub2' blob 0 has shape"):
        icnet_from_caffemodel(_write(tmp_path, payload))


def test_truncated_and_garbage_files_give_clear_errors(tmp_path, reference, capsys):
    payload = _caffemodel_bytes(reference, 'merged')
    truncated = _write(tmp_path, payload[:math.floor(len(payload) * 0.6)], 'cut.caffemodel')
    with pytest.raises(CaffeFormatError, match='truncated'):
        load_caffemodel(truncated)
    assert evs_main(['convert', 'caffe', truncated, str(tmp_path / 'x.pt')]) == 2
    assert 'truncated' in capsys.readouterr().err
    garbage = _write(tmp_path, b'\x00\x01not a caffemodel', 'junk.caffemodel')
    with pytest.raises(CaffeFormatError):
        load_caffemodel(garbage)
    no_icnet = _write(tmp_path, _layer('fc', 'InnerProduct', [np.ones((2, 2), np.float32)]))
    with pytest.raises(CaffeFormatError, match='conv6_cls'):
        icnet_from_caffemodel(no_icnet)


def test_negative_variance_reveals_wrong_bn_blob_order(tmp_path):
    network = _reference_network(seed=2)
    network.conv3_sub1[1].running_var.data[0] = -1.0
    path = _write(tmp_path, _caffemodel_bytes(network, 'bnnomerge'))
    with pytest.raises(CaffeFormatError, match="'conv3_sub1/bn'.*variance"):
        icnet_from_caffemodel(path)
