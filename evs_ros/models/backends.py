"""Pluggable segmentation backends behind one SPEC string (paper §3.2: the network is a black box).

The kinds of SPEC (``ModelConfig.backend``), what each names, its loader and which engines run
it are ONE table: ``evs_ros/config/backends.py`` (:data:`~evs_ros.config.backends.BACKENDS`);
this module holds the loaders of the file and callable kinds. Details the table does not say:

- ``torchscript:PATH`` / ``onnx:PATH``: input ``image`` float32 (1, 3, H, W) BGR in [0, 255]
  (means are subtracted inside), outputs ``probs`` (1, C, h, w) softmax and optionally
  ``features`` (1, Cf, hf, wf); frames are resized to the file's H x W when it is fixed. An ONNX
  file runs on the chosen engine (OpenVINO, ONNX Runtime, TensorRT); ``model.engine=torch``
  runs it on ONNX Runtime, else OpenCV's ``cv2.dnn``.
- ``python:MODULE:FACTORY``: ``FACTORY()`` returns a callable ``f(image_bgr uint8 (H, W, 3)) ->
  float32 (C, h, w)`` probabilities at any resolution, with a ``num_classes`` attribute and
  optionally ``class_names`` (a sequence of C names).

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
import logging
import os
from typing import Optional, Tuple

import numpy as np

from evs_ros.config.backends import backend_kinds, split_spec  # noqa: F401 (re-exported)
from evs_ros.data.classes import (ClassMapping, class_mapping, classes_file_for,
                                  default_class_names, sidecar_class_names)
from evs_ros.models.base import Prediction

LOGGER = logging.getLogger('evs_ros')
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights')
DEFAULT_ICNET = os.path.join(WEIGHTS_DIR, 'icnet_synth.pt')
DEFAULT_REFINER = os.path.join(WEIGHTS_DIR, 'refiner_synth.pt')
META_FILE = 'evs_meta.json'  # TorchScript extra file: {"input_size": [H, W], "class_names": []}
KINDS = tuple(backend_kinds())


def _existing(path: str, what: str) -> str:
    if not os.path.isfile(path):
        hint = (' (shipped weights are made by `evs train`; pass your own with icnet:PATH)'
                if path in (DEFAULT_ICNET, DEFAULT_REFINER) else '')
        raise FileNotFoundError(f'{what} file {path!r} does not exist{hint}')
    return path


def load_backend(spec: str, device: str = 'auto', fp16: bool = False):
    """Build the ``SegmentationModel`` named by ``spec`` with the loader of its kind.

    The kinds are ``evs_ros/config/backends.py``'s; the model runs on torch, and
    :func:`evs_ros.models.loading.load_models` then hands it to the configured engine.
    """
    kind, rest = split_spec(spec)
    row = backend_kinds()[kind]
    if not row.loader:
        raise ValueError(f'{spec!r} must be resolved first (evs_ros.models.loading.load_models)')
    module_name, _, function = row.loader.partition(':')
    return getattr(importlib.import_module(module_name), function)(rest, device, fp16)


def load_icnet_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``icnet:PATH|default``."""
    return load_icnet(DEFAULT_ICNET if rest == 'default' else rest, device, fp16)


def load_onnx_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``onnx:PATH`` (runs on onnxruntime until an engine is chosen)."""
    return OnnxModel(_existing(rest, 'ONNX'), device)


def load_torchscript_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``torchscript:PATH``."""
    return TorchScriptModel(_existing(rest, 'TorchScript'), device)


def load_espnet_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``espnet:PATH``."""
    from evs_ros.models.espnet import load_espnet
    return load_espnet(_existing(rest, 'ESPNetv2 weights'), device, fp16)


def load_tflite_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``tflite:PATH`` (LiteRT, labels or probabilities; not exportable)."""
    from evs_ros.models.tflite import load_tflite
    return load_tflite(_existing(rest, 'TFLite'))


def load_python_spec(rest: str, device: str = 'auto', fp16: bool = False):
    """``python:MODULE:FACTORY``."""
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
    """A TorchScript file from ``evs export`` as a ``SegmentationModel``.

    Its module runs through ``runner`` (torch, or an engine after an ONNX export).
    """

    graph_name = 'torchscript'

    def __init__(self, path: str, device: str = 'auto'):
        import torch
        from evs_ros.models.graph import ScriptGraph, TorchRunner
        from evs_ros.models.icnet import select_device
        self.device = select_device(device)
        extra = {META_FILE: ''}
        module = torch.jit.load(path, map_location=self.device, _extra_files=extra).eval()
        meta = json.loads(extra[META_FILE] or '{}')
        self.input_size = tuple(meta['input_size']) if meta.get('input_size') else None
        self.runner = TorchRunner(ScriptGraph(module))
        probe = self.raw_predict(np.zeros((self.input_size or (65, 65)) + (3,), np.uint8))
        if probe.features is None:
            self.runner.module.output_names = ('probs',)
        self.set_classes(*_file_class_names(path, meta.get('class_names')), probe)

    def raw_predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        import torch
        data = torch.from_numpy(_resize_bgr(image_bgr, self.input_size)).to(self.device)
        return _prediction([output.float().cpu().numpy() for output in self.runner(data)])


class OnnxModel(MappedClassesModel):
    """An ONNX file as a ``SegmentationModel``, run by an engine (:meth:`use_engine`).

    OpenVINO, ONNX Runtime or TensorRT read the file itself; without an engine (the torch reference
    has none for ONNX) ONNX Runtime, or OpenCV's ``cv2.dnn`` when it is missing.
    """

    def __init__(self, path: str, device: str = 'auto'):
        import onnx

        from evs_ros.models.engines import engine_version
        self.path = path
        self.device_type = 'cuda' if device.startswith('cuda') else 'cpu'
        graph = onnx.load(path, load_external_data=False).graph
        initializers = {item.name for item in graph.initializer}
        inputs = [item for item in graph.input if item.name not in initializers]
        shape = [dim.dim_value or None for dim in inputs[0].type.tensor_type.shape.dim]
        self.input_name = inputs[0].name
        self.output_names = tuple(output.name for output in graph.output)
        static = len(shape) == 4 and all(dim for dim in shape[2:])
        self.input_size = (int(shape[2]), int(shape[3])) if static else None
        self._resized_from = set()  # frame sizes already said to be resized to input_size
        self._sessions = {}
        self.dnn = None
        self.engine, self.precision = '', 'fp32'
        self.use_engine('onnxruntime' if engine_version('onnxruntime') else 'opencv')
        probe = self.raw_predict(np.zeros((self.input_size or (65, 65)) + (3,), np.uint8))
        self.set_classes(*_file_class_names(path), probe)

    def use_engine(self, engine: str, precision: str = 'fp32') -> None:
        """Run the file on ``engine`` (openvino, onnxruntime, tensorrt, or opencv = cv2.dnn)."""
        self.engine, self.precision = engine, precision
        self._sessions = {}
        if engine == 'opencv' and self.dnn is None:
            import cv2
            self.dnn = _read_onnx_with_cv2(cv2, self.path)

    def raw_predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction at the exported network's output size."""
        self._say_resized(tuple(image_bgr.shape[:2]))
        data = _resize_bgr(image_bgr, self.input_size)
        if self.engine == 'opencv':
            self.dnn.setInput(data)
            return _prediction(self.dnn.forward(list(self.output_names)))
        import torch
        session = self._session(torch.get_num_threads(), tuple(data.shape))
        outputs = session.run([torch.from_numpy(data)])
        return _prediction([output.float().cpu().numpy() for output in outputs])

    def _say_resized(self, size_hw: tuple) -> None:
        """Warn once per frame size that a fixed-size graph gets its frames resized.

        The network's input scale (``model.input_short_side`` times D) cannot reach a graph
        exported at one size: the frame is resized to the file's size instead, never silently.
        """
        if not self.input_size or size_hw == self.input_size or size_hw in self._resized_from:
            return
        self._resized_from.add(size_hw)
        LOGGER.warning('onnx:%s has a fixed input of %dx%d (HxW): frames of %dx%d reach it '
                       'resized (export it at the network input size, or with dynamic height '
                       'and width)', self.path, self.input_size[0], self.input_size[1],
                       size_hw[0], size_hw[1])

    def _session(self, threads: int, shape: tuple):
        """Return the session for ``threads`` (and, for TensorRT, the input ``shape``).

        A file with a dynamic input runs every size on OpenVINO and ONNX Runtime; TensorRT
        builds one plan per size, so that each plan serves exactly the size it was built for.
        """
        key = (threads, shape if self.engine == 'tensorrt' else None)
        session = self._sessions.get(key)
        if session is None:
            from evs_ros.models.engines import SessionSpec, open_session
            session = open_session(SessionSpec(
                self.engine, self.path, (self.input_name,), self.output_names, threads,
                self.precision, self.device_type, self._plan_path(shape), (shape,)))
            self._sessions[key] = session
        return session

    def _plan_path(self, shape: tuple) -> str:
        """TensorRT: where the plan built from this file for ``shape`` is cached."""
        if self.engine != 'tensorrt':
            return ''
        from evs_ros.models import engine_cache
        from evs_ros.models.engines import engine_version
        folder = engine_cache.graph_dir('onnx-file', engine_cache.file_hash(self.path))
        return os.path.join(folder, f'{engine_cache.shape_key([shape])}-tensorrt'
                            f'{engine_version("tensorrt")}-{self.precision}.plan')


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

    engine = 'python'  # runs as it is: model.engine does not apply (not exportable)

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
