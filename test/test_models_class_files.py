"""onnx:, torchscript: and python: backends publish classes like hf: (evs_ros/data/classes.py).

Class names come from ``PATH``'s ``.classes.txt`` file (onnx, torchscript), a TorchScript file's
``evs_meta.json``, or the python object's ``class_names``; Cityscapes networks come out in
trainId order. Tiny constant networks are exported here, not ICNet, to keep this fast.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from evs_ros.data.labels import CLASS_NAMES, TRAIN_ID
from evs_ros.models import load_backend
from evs_ros.models.backends import META_FILE
from fake_class_models import SHUFFLED_CITYSCAPES

INPUT_HW = (32, 64)
IMAGE = np.random.default_rng(0).integers(0, 256, INPUT_HW + (3,), dtype=np.uint8)


class ConstantNet(nn.Module):
    """Map an image (1, 3, H, W) to probs favouring channel ``hot`` and features.

    probs (1, C, H/4, W/4), features (1, 2, H/16, W/16).
    """

    def __init__(self, num_classes: int, hot: int):
        super().__init__()
        bias = torch.zeros(num_classes)
        bias[hot] = 10.0
        self.register_buffer('bias', bias)

    def forward(self, image):
        small = nn.functional.avg_pool2d(image, 4)                      # (1, 3, H/4, W/4)
        logits = small[:, :1] * 0.0 + self.bias.view(1, -1, 1, 1)      # (1, C, H/4, W/4)
        return torch.softmax(logits, dim=1), nn.functional.avg_pool2d(small[:, :2], 4)


def export(path, fmt, num_classes, hot, meta_names=None):
    network, example = ConstantNet(num_classes, hot).eval(), torch.zeros((1, 3) + INPUT_HW)
    with warnings.catch_warnings():  # torch's deprecation notices about jit/onnx exporters
        warnings.simplefilter('ignore')
        _export(network, example, path, fmt, meta_names)
    return str(path)


def _export(network, example, path, fmt, meta_names):
    num_classes = int(network.bias.shape[0])
    if fmt == 'torchscript':
        meta = {'input_size': list(INPUT_HW), 'num_classes': num_classes,
                'class_names': list(meta_names or [])}
        torch.jit.save(torch.jit.trace(network, example), str(path),
                       _extra_files={META_FILE: json.dumps(meta)})
    else:
        torch.onnx.export(network, (example,), str(path), input_names=['image'],
                          output_names=['probs', 'features'], opset_version=17, dynamo=False)


def write_names(path, names):
    path.write_text('# network channel order\n\n' + '\n'.join(names) + '\n', encoding='utf-8')


@pytest.mark.parametrize('fmt, suffix', [('onnx', '.onnx'), ('torchscript', '.ts')])
def test_classes_file_of_a_cityscapes_network_gives_train_ids(tmp_path, fmt, suffix):
    car = SHUFFLED_CITYSCAPES.index('Car')
    path = export(tmp_path / f'net{suffix}', fmt, 19, hot=car)
    write_names(tmp_path / 'net.classes.txt', SHUFFLED_CITYSCAPES)
    model = load_backend(f'{fmt}:{path}', device='cpu')
    assert model.class_names == CLASS_NAMES and model.num_classes == 19
    assert model.feature_channels == 2
    prediction = model.predict(IMAGE)
    assert car != TRAIN_ID['car'] and np.all(prediction.probs.argmax(axis=0) == TRAIN_ID['car'])
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0, atol=1e-5)


def test_torchscript_meta_names_and_the_file_overriding_them(tmp_path):
    path = export(tmp_path / 'net.ts', 'torchscript', 3, hot=2,
                  meta_names=['floor', 'shelf', 'robot'])
    model = load_backend(f'torchscript:{path}', device='cpu')
    assert model.class_names == ('floor', 'shelf', 'robot')
    assert np.all(model.predict(IMAGE).probs.argmax(axis=0) == 2)
    write_names(tmp_path / 'net.classes.txt', ['ground', 'rack', 'agv'])
    assert load_backend(f'torchscript:{path}', device='cpu').class_names == ('ground', 'rack',
                                                                             'agv')


def test_networks_without_names(tmp_path):
    model = load_backend(f'onnx:{export(tmp_path / "c19.onnx", "onnx", 19, hot=4)}', device='cpu')
    assert model.class_names == CLASS_NAMES  # 19 classes without names: Cityscapes, as is
    assert np.all(model.predict(IMAGE).probs.argmax(axis=0) == 4)
    model = load_backend(f'onnx:{export(tmp_path / "c4.onnx", "onnx", 4, hot=1)}', device='cpu')
    assert model.class_names == ('class_0', 'class_1', 'class_2', 'class_3')


def test_classes_file_with_the_wrong_count_is_named(tmp_path):
    path = export(tmp_path / 'net.onnx', 'onnx', 4, hot=0)
    write_names(tmp_path / 'net.classes.txt', ['a', 'b', 'c'])
    with pytest.raises(ValueError, match=r'net\.classes\.txt: 3 class names for a network with 4'):
        load_backend(f'onnx:{path}', device='cpu')


def test_python_backend_class_names():
    model = load_backend('python:fake_class_models:make_shuffled_car')
    assert model.class_names == CLASS_NAMES and model.feature_channels is None
    assert np.all(model.predict(IMAGE).probs.argmax(axis=0) == TRAIN_ID['car'])
    model = load_backend('python:fake_class_models:make_warehouse_robot')
    assert model.class_names == ('floor', 'shelf', 'robot')
    assert np.all(model.predict(IMAGE).probs.argmax(axis=0) == 2)
    with pytest.raises(ValueError, match='class_names: 3 class names for a network with 4'):
        load_backend('python:fake_class_models:make_wrong_names')
