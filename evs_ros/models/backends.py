"""Pluggable segmentation backends behind one SPEC string (paper §3.2: the network is a black box).

SPECs (``ModelConfig.backend``):

- ``espnet:PATH`` - a published ESPNetv2 segmentation state_dict (sacmehta/EdgeNets, e.g. the
  Cityscapes ``espnetv2_s_2.0_city_1024x512.pth``; ``evs_ros/models/espnet.py``).
- ``icnet:PATH`` - an evs_ros checkpoint (``evs train`` / ``evs convert``) or directly an official
  ``.caffemodel``; ``icnet:default`` = the shipped ``evs_ros/models/weights/icnet_synth.pt``.
- ``torchscript:PATH`` / ``onnx:PATH`` - files written by ``evs export``: input ``image`` float32
  (1, 3, H, W) BGR in [0, 255] (means are subtracted inside), outputs ``probs`` (1, C, h, w)
  softmax and optionally ``features`` (1, Cf, hf, wf). Frames are resized to the exported H x W.
  ONNX runs on onnxruntime, or on OpenCV's ``cv2.dnn`` when onnxruntime is missing.
- ``tflite:PATH`` - a TensorFlow Lite network with a uint8 RGB input, e.g. Coral's int8
  DeepLabv3 for Cityscapes (LiteRT; a label-map output is labels-only: R is off;
  ``evs_ros/models/tflite.py``).
- ``python:MODULE:FACTORY`` - ``FACTORY()`` returns a callable ``f(image_bgr uint8 (H, W, 3)) ->
  float32 (C, h, w)`` probabilities at any resolution, with a ``num_classes`` attribute and
  optionally ``class_names`` (a sequence of C names).
- ``hf:MODEL`` - a Hugging Face ``transformers`` network (SegFormer, UperNet, Mask2Former,
  MaskFormer): a ``save_pretrained`` directory or a hub id read from the local Hugging Face cache
  only (``evs_ros/models/hf.py``).

Classes (``evs_ros/data/classes.py``): every backend exposes ``num_classes``, ``class_names``
(tuple) and ``feature_channels`` (int, or None without features). A network whose class names are
the 19 Cityscapes classes in any order (any case, ``_`` or ``-`` for spaces) is published in
Cityscapes trainId order (extra classes dropped, probabilities renormalised); any other network in
its own order with its own names. Where the names come from:

- ``hf:`` - ``config.json``'s ``id2label``;
- ``onnx:PATH`` / ``torchscript:PATH`` - the class-names file next to PATH with the extension
  replaced by ``.classes.txt`` (``nets/ddrnet.onnx`` -> ``nets/ddrnet.classes.txt``: one name per
  line, line i names output channel i, blank and ``#`` lines skipped); without it a TorchScript
  file's ``evs_meta.json`` ``class_names``; otherwise Cityscapes for 19 classes, else
  ``class_<i>``;
- ``python:`` - the ``class_names`` attribute of the object ``FACTORY()`` returns;
- ``icnet:`` - the checkpoint's ``class_names`` (published as they are, not re-ordered);
- ``espnet:`` - Cityscapes' 19 + ``background`` for a 20-class checkpoint (published as the 19
  trainIds), else ``class_<i>``.

Networks without low-level features give ``Prediction.features = None``; the Refiner then runs on
the image and the warped probabilities only (zeros in place of F).
"""

import importlib
import json
import os
from typing import Optional, Tuple

import numpy as np

from evs_ros.data.classes import (ClassMapping, class_mapping, classes_file_for,
                                  default_class_names, sidecar_class_names)
from evs_ros.models.base import Prediction

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights')
DEFAULT_ICNET = os.path.join(WEIGHTS_DIR, 'icnet_synth.pt')
DEFAULT_REFINER = os.path.join(WEIGHTS_DIR, 'refiner_synth.pt')
META_FILE = 'evs_meta.json'  # TorchScript extra file: {"input_size": [H, W], "class_names": []}
KINDS = ('icnet', 'espnet', 'torchscript', 'onnx', 'tflite', 'python', 'hf')


def split_spec(spec: str) -> Tuple[str, str]:
    """'kind:rest' -> (kind, rest); ValueError listing valid kinds otherwise."""
    kind, sep, rest = spec.partition(':')
    if not sep or kind not in KINDS or not rest:
        raise ValueError(f'backend SPEC {spec!r} is not one of icnet:PATH, icnet:default, '
                         'espnet:PATH, torchscript:PATH, onnx:PATH, tflite:PATH, '
                         'python:MODULE:FACTORY, hf:MODEL')
    return kind, rest


def _existing(path: str, what: str) -> str:
    if not os.path.isfile(path):
        hint = (' (shipped weights are made by `evs train`; pass your own with icnet:PATH)'
                if path in (DEFAULT_ICNET, DEFAULT_REFINER) else '')
        raise FileNotFoundError(f'{what} file {path!r} does not exist{hint}')
    return path


def load_backend(spec: str, device: str = 'auto', fp16: bool = False):
    """Build the ``SegmentationModel`` named by ``spec`` (see module docstring)."""
    kind, rest = split_spec(spec)
    if kind == 'icnet':
        return load_icnet(DEFAULT_ICNET if rest == 'default' else rest, device, fp16)
    if kind == 'espnet':
        from evs_ros.models.espnet import load_espnet
        return load_espnet(_existing(rest, 'ESPNetv2 weights'), device, fp16)
    if kind == 'torchscript':
        return TorchScriptModel(_existing(rest, 'TorchScript'), device)
    if kind == 'onnx':
        return OnnxModel(_existing(rest, 'ONNX'), device)
    if kind == 'tflite':
        from evs_ros.models.tflite import load_tflite
        return load_tflite(_existing(rest, 'TFLite'))
    if kind == 'hf':
        from evs_ros.models.hf import load_hf_model
        return load_hf_model(rest, device, fp16)
    return PythonModel(rest)


def load_icnet(path: str, device: str = 'auto', fp16: bool = False):
    """``IcnetModel`` from an evs_ros checkpoint or an official ``.caffemodel``."""
    from evs_ros.models.checkpoint import build_network, load_checkpoint
    from evs_ros.models.icnet import IcnetModel
    _existing(path, 'ICNet weights')
    if path.endswith('.caffemodel'):
        from evs_ros.models.caffe import icnet_from_caffemodel
        network, _ = icnet_from_caffemodel(path)
        return IcnetModel(network, device, fp16, default_class_names(network.num_classes))
    checkpoint = load_checkpoint(path, expected_arch='icnet')
    network = build_network(checkpoint)
    names = tuple(checkpoint.get('class_names') or ()) or None
    return IcnetModel(network, device, fp16,
                      names if names else default_class_names(network.num_classes))


def load_refiner(spec_or_path: str, device: str = 'auto', fp16: bool = False):
    """``TorchRefiner`` from a checkpoint path, ``'default'`` (shipped) or None for ``''``."""
    if not spec_or_path:
        return None
    from evs_ros.models.checkpoint import build_network, load_checkpoint
    from evs_ros.models.refiner import TorchRefiner
    path = DEFAULT_REFINER if spec_or_path == 'default' else spec_or_path
    path = path[len('refiner:'):] if path.startswith('refiner:') else path
    checkpoint = load_checkpoint(_existing(path, 'Refiner weights'), expected_arch='refiner')
    return TorchRefiner(build_network(checkpoint), device, fp16,
                        class_names=checkpoint.get('class_names'))


def _resize_bgr(image_bgr: np.ndarray, input_size: Optional[Tuple[int, int]]) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, 3, h, w) at ``input_size`` (h, w) (None: unchanged)."""
    import cv2
    if input_size and tuple(image_bgr.shape[:2]) != tuple(input_size):
        image_bgr = cv2.resize(image_bgr, (input_size[1], input_size[0]),
                               interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image_bgr.transpose(2, 0, 1)[None], dtype=np.float32)


def _prediction(outputs) -> Prediction:
    probs = np.asarray(outputs[0], dtype=np.float32)[0]
    features = np.asarray(outputs[1], dtype=np.float32)[0] if len(outputs) > 1 else None
    return Prediction(probs=probs, features=features)


class MappedClassesModel:
    """Base of the file and callable backends.

    Publishes the raw output through a :class:`~evs_ros.data.classes.ClassMapping` (see the module
    docstring, Classes).

    Subclasses implement ``raw_predict(image_bgr) -> Prediction`` in the network's own channel
    order and call :meth:`set_classes` once.
    """

    mapping: ClassMapping

    def set_classes(self, network_names, source: str, probe: Prediction) -> None:
        """Set the class mapping and feature channels from the names and one probe.

        Sets ``mapping``, ``num_classes``, ``class_names`` and ``feature_channels`` from the
        network's names (or None; ``source`` says where they come from, for errors) and one probe
        prediction.
        """
        try:
            self.mapping = class_mapping(network_names, int(probe.probs.shape[0]))
        except ValueError as error:
            raise ValueError(f'{source}: {error}') from None
        self.num_classes = self.mapping.num_classes
        self.class_names = tuple(self.mapping.names)
        self.feature_channels = None if probe.features is None else int(probe.features.shape[0])

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction, probabilities in published class order."""
        raw = self.raw_predict(image_bgr)
        return Prediction(probs=self.mapping.apply(raw.probs), features=raw.features)


def _file_class_names(path: str, fallback=None):
    """(names, where they come from): ``path``'s class-names file, else ``fallback``."""
    names = sidecar_class_names(path)
    if names is not None:
        return names, classes_file_for(path)
    return fallback, path


class TorchScriptModel(MappedClassesModel):
    """A TorchScript file from ``evs export`` as a ``SegmentationModel``."""

    def __init__(self, path: str, device: str = 'auto'):
        import torch
        from evs_ros.models.icnet import select_device
        self.device = select_device(device)
        extra = {META_FILE: ''}
        self.module = torch.jit.load(path, map_location=self.device, _extra_files=extra).eval()
        meta = json.loads(extra[META_FILE] or '{}')
        self.input_size = tuple(meta['input_size']) if meta.get('input_size') else None
        probe = self.raw_predict(np.zeros((self.input_size or (65, 65)) + (3,), np.uint8))
        self.set_classes(*_file_class_names(path, meta.get('class_names')), probe)

    def raw_predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        import torch
        data = torch.from_numpy(_resize_bgr(image_bgr, self.input_size)).to(self.device)
        with torch.inference_mode():
            outputs = self.module(data)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return _prediction([output.float().cpu().numpy() for output in outputs])


class OnnxModel(MappedClassesModel):
    """An ONNX file from ``evs export`` on onnxruntime (CUDA when available) or ``cv2.dnn``."""

    def __init__(self, path: str, device: str = 'auto'):
        try:
            import onnxruntime
        except ImportError:
            onnxruntime = None
        self.session, self.dnn = None, None
        if onnxruntime is not None:
            available = onnxruntime.get_available_providers()
            providers = ['CPUExecutionProvider']
            if device != 'cpu' and 'CUDAExecutionProvider' in available:
                providers.insert(0, 'CUDAExecutionProvider')
            self.session = onnxruntime.InferenceSession(path, providers=providers)
            shape = self.session.get_inputs()[0].shape
            self.output_names = [output.name for output in self.session.get_outputs()]
        else:
            import cv2
            import onnx
            self.dnn = _read_onnx_with_cv2(cv2, path)
            graph = onnx.load(path).graph
            shape = [dim.dim_value or None for dim in graph.input[0].type.tensor_type.shape.dim]
            self.output_names = [output.name for output in graph.output]
        static = all(isinstance(dim, int) and dim > 0 for dim in shape[2:])
        self.input_size = (int(shape[2]), int(shape[3])) if static else None
        probe = self.raw_predict(np.zeros((self.input_size or (65, 65)) + (3,), np.uint8))
        self.set_classes(*_file_class_names(path), probe)

    def raw_predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        data = _resize_bgr(image_bgr, self.input_size)
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            return _prediction(self.session.run(self.output_names, {name: data}))
        self.dnn.setInput(data)
        return _prediction(self.dnn.forward(self.output_names))


def _read_onnx_with_cv2(cv2, path: str):
    """``cv2.dnn`` net.

    On OpenCV 5 with the classic engine (the new engine of 5.0.0 returned stale ``probs`` after the
    first forward of our exported graph).
    """
    engine = getattr(cv2.dnn, 'ENGINE_CLASSIC', None)
    if engine is None:
        return cv2.dnn.readNetFromONNX(path)
    return cv2.dnn.readNetFromONNX(path, engine=engine)


class PythonModel(MappedClassesModel):
    """``python:MODULE:FACTORY``: a user callable returning float32 (C, h, w) probabilities."""

    def __init__(self, target: str):
        module_name, sep, factory_name = target.rpartition(':')
        if not sep or not module_name:
            raise ValueError(f'python backend needs MODULE:FACTORY, got {target!r}')
        factory = getattr(importlib.import_module(module_name), factory_name, None)
        if factory is None:
            raise ValueError(f'module {module_name!r} has no factory {factory_name!r}')
        self.function = factory()
        self.raw_classes = int(getattr(self.function, 'num_classes', 0))
        if self.raw_classes < 1:
            raise ValueError(f'{target}: the object FACTORY() returns needs a num_classes '
                             'attribute >= 1')
        names = getattr(self.function, 'class_names', None)
        try:
            self.mapping = class_mapping(None if names is None else tuple(names),
                                         self.raw_classes)
        except ValueError as error:
            raise ValueError(f'{target}: class_names: {error}') from None
        self.num_classes = self.mapping.num_classes
        self.class_names = tuple(self.mapping.names)
        self.feature_channels = None

    def raw_predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction(probs float32 (C, h, w), features None)."""
        probs = np.asarray(self.function(image_bgr), dtype=np.float32)
        if probs.ndim != 3 or probs.shape[0] != self.raw_classes:
            raise ValueError(f'python backend returned shape {probs.shape}, expected '
                             f'(C={self.raw_classes}, h, w) probabilities')
        return Prediction(probs=probs, features=None)
