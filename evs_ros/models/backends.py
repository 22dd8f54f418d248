"""Pluggable segmentation backends behind one SPEC string (paper §3.2: the network is a black box).

SPECs (``ModelConfig.backend``):

- ``icnet:PATH`` - an evs_ros checkpoint (``evs train`` / ``evs convert``) or directly an official
  ``.caffemodel``; ``icnet:default`` = the shipped ``evs_ros/models/weights/icnet_synth.pt``.
- ``torchscript:PATH`` / ``onnx:PATH`` - files written by ``evs export``: input ``image`` float32
  (1, 3, H, W) BGR in [0, 255] (means are subtracted inside), outputs ``probs`` (1, C, h, w)
  softmax and optionally ``features`` (1, Cf, hf, wf). Frames are resized to the exported H x W.
  ONNX runs on onnxruntime, or on OpenCV's ``cv2.dnn`` when onnxruntime is missing.
- ``python:MODULE:FACTORY`` - ``FACTORY()`` returns a callable ``f(image_bgr uint8 (H, W, 3)) ->
  float32 (C, h, w)`` probabilities at any resolution, with a ``num_classes`` attribute.

Networks without low-level features give ``Prediction.features = None``; the Refiner then runs on
the image and the warped probabilities only (zeros in place of F).
"""

import importlib
import json
import os
from typing import Optional, Tuple

import numpy as np

from evs_ros.models.base import Prediction

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights')
DEFAULT_ICNET = os.path.join(WEIGHTS_DIR, 'icnet_synth.pt')
DEFAULT_REFINER = os.path.join(WEIGHTS_DIR, 'refiner_synth.pt')
META_FILE = 'evs_meta.json'  # TorchScript extra file: {"input_size": [H, W], "class_names": []}
KINDS = ('icnet', 'torchscript', 'onnx', 'python')


def split_spec(spec: str) -> Tuple[str, str]:
    """'kind:rest' -> (kind, rest); ValueError listing valid kinds otherwise."""
    kind, sep, rest = spec.partition(':')
    if not sep or kind not in KINDS or not rest:
        raise ValueError(f'backend SPEC {spec!r} is not one of icnet:PATH, icnet:default, '
                         'torchscript:PATH, onnx:PATH, python:MODULE:FACTORY')
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
    if kind == 'torchscript':
        return TorchScriptModel(_existing(rest, 'TorchScript'), device)
    if kind == 'onnx':
        return OnnxModel(_existing(rest, 'ONNX'), device)
    return PythonModel(rest)


def load_icnet(path: str, device: str = 'auto', fp16: bool = False):
    """``IcnetModel`` from an evs_ros checkpoint or an official ``.caffemodel``."""
    from evs_ros.models.checkpoint import build_network, load_checkpoint
    from evs_ros.models.icnet import IcnetModel
    _existing(path, 'ICNet weights')
    if path.endswith('.caffemodel'):
        from evs_ros.models.caffe import icnet_from_caffemodel
        network, _ = icnet_from_caffemodel(path)
        return IcnetModel(network, device, fp16)
    checkpoint = load_checkpoint(path, expected_arch='icnet')
    return IcnetModel(build_network(checkpoint), device, fp16,
                      tuple(checkpoint.get('class_names') or ()) or None)


def load_refiner(spec_or_path: str, device: str = 'auto', fp16: bool = False):
    """``TorchRefiner`` from a checkpoint path, ``'default'`` (shipped) or None for ``''``."""
    if not spec_or_path:
        return None
    from evs_ros.models.checkpoint import build_network, load_checkpoint
    from evs_ros.models.refiner import TorchRefiner
    path = DEFAULT_REFINER if spec_or_path == 'default' else spec_or_path
    path = path[len('refiner:'):] if path.startswith('refiner:') else path
    checkpoint = load_checkpoint(_existing(path, 'Refiner weights'), expected_arch='refiner')
    return TorchRefiner(build_network(checkpoint), device, fp16)


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


class TorchScriptModel:
    """A TorchScript file from ``evs export`` as a ``SegmentationModel``."""

    def __init__(self, path: str, device: str = 'auto'):
        import torch
        from evs_ros.models.icnet import select_device
        self.device = select_device(device)
        extra = {META_FILE: ''}
        self.module = torch.jit.load(path, map_location=self.device, _extra_files=extra).eval()
        meta = json.loads(extra[META_FILE] or '{}')
        self.input_size = tuple(meta['input_size']) if meta.get('input_size') else None
        self.class_names = meta.get('class_names')
        self.num_classes = int(meta.get('num_classes') or 0) or self._probe_classes()

    def _probe_classes(self) -> int:
        size = self.input_size or (65, 65)
        return int(self.predict(np.zeros(size + (3,), np.uint8)).probs.shape[0])

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        import torch
        data = torch.from_numpy(_resize_bgr(image_bgr, self.input_size)).to(self.device)
        with torch.inference_mode():
            outputs = self.module(data)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return _prediction([output.float().cpu().numpy() for output in outputs])


class OnnxModel:
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
        self.num_classes = int(self.predict(np.zeros((self.input_size or (65, 65)) + (3,),
                                                     np.uint8)).probs.shape[0])

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        data = _resize_bgr(image_bgr, self.input_size)
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            return _prediction(self.session.run(self.output_names, {name: data}))
        self.dnn.setInput(data)
        return _prediction(self.dnn.forward(self.output_names))


def _read_onnx_with_cv2(cv2, path: str):
    """``cv2.dnn`` net; on OpenCV 5 with the classic engine (the new engine of 5.0.0 returned
    stale ``probs`` after the first forward of our exported graph)."""
    engine = getattr(cv2.dnn, 'ENGINE_CLASSIC', None)
    if engine is None:
        return cv2.dnn.readNetFromONNX(path)
    return cv2.dnn.readNetFromONNX(path, engine=engine)


class PythonModel:
    """``python:MODULE:FACTORY``: a user callable returning float32 (C, h, w) probabilities."""

    def __init__(self, target: str):
        module_name, sep, factory_name = target.rpartition(':')
        if not sep or not module_name:
            raise ValueError(f'python backend needs MODULE:FACTORY, got {target!r}')
        factory = getattr(importlib.import_module(module_name), factory_name, None)
        if factory is None:
            raise ValueError(f'module {module_name!r} has no factory {factory_name!r}')
        self.function = factory()
        self.num_classes = int(getattr(self.function, 'num_classes', 0))
        if self.num_classes < 1:
            raise ValueError(f'{target}: the object FACTORY() returns needs a num_classes '
                             'attribute >= 1')

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction(probs float32 (C, h, w), features None)."""
        probs = np.asarray(self.function(image_bgr), dtype=np.float32)
        if probs.ndim != 3 or probs.shape[0] != self.num_classes:
            raise ValueError(f'python backend returned shape {probs.shape}, expected '
                             f'(C={self.num_classes}, h, w) probabilities')
        return Prediction(probs=probs, features=None)
