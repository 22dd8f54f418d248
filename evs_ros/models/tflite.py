"""TensorFlow Lite networks (``tflite:PATH``), e.g. Google's int8 DeepLabv3 (Edge TPU family).

Runs on LiteRT (``ai-edge-litert``, Google's maintained successor of ``tflite-runtime``; its
XNNPACK CPU delegate runs the int8 kernels), or on ``tflite_runtime`` / ``tensorflow.lite`` when
those are what is installed. OpenCV's DNN module reads TFLite too, but not every int8 operator
of these models, so it is not used.

What the file's tensors say decides the rest:

- Input: uint8 (1, H, W, 3) RGB (quantised models take raw pixels; their quantisation maps
  them). Other input types are refused with one line.
- Output rank 3, integers (1, H, W): an ArgMax label map, as the Coral DeepLab models give.
  Such a network is **labels-only** (``labels_only = True``): EVS warps its labels (W) and
  checks them with IAM, but the Refiner needs probabilities, so R is off (one warning, from
  :func:`evs_ros.models.loading.load_models`). The labels become one-hot probabilities.
- Output rank 4 (1, H, W, C): class scores, dequantised and turned into probabilities.

Classes: ``PATH``'s class-names file (``NAME.classes.txt``, one name per output id) when it
exists, else the Cityscapes trainIds (19 classes); ids outside the classes count as ignore.

Wide frames: the network's input is square (513x513 for DeepLab). ``tiles`` (the default,
chosen by measurement, docs/benchmarks.md section 12) scales the frame so that its short side
fills the input and covers the long side with evenly overlapping squares, each pixel taken from
the square whose centre is nearest; ``resize`` squashes the whole frame into one square.
"""

import logging
import os
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from evs_ros.data.classes import default_class_names, sidecar_class_names
from evs_ros.data.labels import NUM_CLASSES
from evs_ros.models.base import Prediction

LOGGER = logging.getLogger('evs_ros')
TILING = ('tiles', 'resize')
MAX_OUTPUT_WIDTH = 512
"""Label maps wider than this are reduced (nearest) before becoming probabilities; the pipeline
brings labels back to camera size (like ICNet's 1/4 output for a 2048 px camera)."""


def _interpreter_class():
    """Return the TFLite ``Interpreter`` class of whichever runtime is installed."""
    for module, attribute in (('ai_edge_litert.interpreter', 'Interpreter'),
                              ('tflite_runtime.interpreter', 'Interpreter'),
                              ('tensorflow.lite', 'Interpreter')):
        try:
            return getattr(__import__(module, fromlist=[attribute]), attribute)
        except ImportError:
            continue
    raise ImportError('tflite: no TFLite runtime is installed: pip install ai-edge-litert')


def square_tiles(length: int, side: int) -> List[int]:
    """Return the starts of the fewest ``side``-long windows evenly covering ``length``.

    The first at 0, the last ending at ``length``.
    """
    if length <= side:
        return [0]
    count = -(-length // side)
    return [round(index * (length - side) / (count - 1)) for index in range(count)]


class TfliteModel:
    """A TFLite segmentation network as a ``SegmentationModel``.

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (the inference worker sets them with :meth:`set_threads`).
        tiling: ``tiles`` or ``resize`` for frames of another aspect than the input.

    Attributes:
        labels_only: True when the network gives a label map, not probabilities.
        num_classes, class_names: the published classes.
        feature_channels: None (no low-level features for the Refiner).
    """

    engine = 'litert'  # runs as it is: model.engine does not apply (not exportable)
    feature_channels = None

    def __init__(self, path: str, threads: int = 1, tiling: str = 'tiles'):
        if tiling not in TILING:
            raise ValueError(f'tflite tiling {tiling!r} is not one of {", ".join(TILING)}')
        self.path, self.tiling, self.threads = path, tiling, int(threads)
        self._interpreter = self._load(self.threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_hw = self._check_input(self._input)
        rank = len(self._output['shape'])
        if rank not in (3, 4):
            raise ValueError(f'{path}: output of shape {tuple(self._output["shape"])}; expected '
                             'a label map (1, H, W) or class scores (1, H, W, C)')
        self.labels_only = rank == 3
        names = sidecar_class_names(path)
        outputs = NUM_CLASSES if self.labels_only else int(self._output['shape'][-1])
        if names is not None and len(names) != outputs and not self.labels_only:
            raise ValueError(f'{path}: {len(names)} class names for {outputs} output classes')
        self.class_names = tuple(names) if names else default_class_names(outputs)
        self.num_classes = len(self.class_names)

    def _load(self, threads: int):
        interpreter_class = _interpreter_class()
        try:
            interpreter = interpreter_class(model_path=self.path, num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ''
            raise ValueError(f'tflite:{self.path} is not a TFLite model LiteRT runs: '
                             f'{message}') from None
        return interpreter

    def _check_input(self, details) -> Tuple[int, int]:
        shape = tuple(int(v) for v in details['shape'])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or details['dtype'] != np.uint8:
            raise ValueError(f'{self.path}: input {shape} {np.dtype(details["dtype"]).name}; '
                             'evs_ros runs TFLite networks with a uint8 (1, H, W, 3) RGB input')
        return shape[1], shape[2]

    def set_threads(self, threads: int) -> None:
        """Rebuild the interpreter with ``threads`` threads (called in the inference worker)."""
        if int(threads) != self.threads:
            self.threads = int(threads)
            self._interpreter = self._load(self.threads)

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """Predict a uint8 (H, W, 3) BGR frame: probabilities (C, h, w), h/w = H/W.

        At most ``MAX_OUTPUT_WIDTH`` wide (one-hot for labels-only networks).
        """
        from evs_ros.models.icnet import check_image
        height, width = check_image(image_bgr)
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        if self.tiling == 'resize':
            scores = self._run(cv2.resize(rgb, self.input_hw[::-1],
                                          interpolation=cv2.INTER_AREA))
            out_w = min(width, MAX_OUTPUT_WIDTH)
            out_h = max(1, round(height * out_w / width))
            scores = _resize_scores(scores, (out_h, out_w))
        else:
            scores = self._run_tiles(rgb)
        return Prediction(probs=self._probabilities(scores), features=None)

    def _run_tiles(self, rgb: np.ndarray) -> np.ndarray:
        """Labels or scores of the whole frame from overlapping squares (module docstring)."""
        side_h, side_w = self.input_hw
        height, width = rgb.shape[:2]
        scale = max(side_h / height, side_w / width)  # the frame just covers one input
        scaled = cv2.resize(rgb, (max(side_w, round(width * scale)),
                                  max(side_h, round(height * scale))),
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        rows, cols = square_tiles(scaled.shape[0], side_h), square_tiles(scaled.shape[1], side_w)
        canvas = None
        for top, row_lo, row_hi in _nearest_centre_spans(rows, side_h, scaled.shape[0]):
            for left, col_lo, col_hi in _nearest_centre_spans(cols, side_w, scaled.shape[1]):
                tile = self._run(scaled[top:top + side_h, left:left + side_w])
                if canvas is None:
                    canvas = np.zeros(scaled.shape[:2] + tile.shape[2:], tile.dtype)
                canvas[row_lo:row_hi, col_lo:col_hi] = \
                    tile[row_lo - top:row_hi - top, col_lo - left:col_hi - left]
        out_w = min(width, MAX_OUTPUT_WIDTH, canvas.shape[1])
        return _resize_scores(canvas, (max(1, round(height * out_w / width)), out_w))

    def _run(self, rgb_square: np.ndarray) -> np.ndarray:
        """One interpreter call: labels int (h, w) or dequantised scores float32 (h, w, C)."""
        self._interpreter.set_tensor(self._input['index'], rgb_square[None])
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output['index'])[0]
        if self.labels_only:
            return out.astype(np.int64)
        scale, zero = self._output.get('quantization', (0.0, 0))
        return (out.astype(np.float32) - zero) * scale if scale else out.astype(np.float32)

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Return float32 (C, h, w) probabilities from labels or scores.

        Labels: one-hot (ids outside the classes: uniform); scores: softmax.
        """
        if self.labels_only:
            labels = scores
            probs = np.zeros((self.num_classes,) + labels.shape, np.float32)
            valid = (labels >= 0) & (labels < self.num_classes)
            rows, cols = np.nonzero(valid)
            probs[labels[valid], rows, cols] = 1.0
            probs[:, ~valid] = 1.0 / self.num_classes
            return probs
        logits = np.moveaxis(scores, -1, 0)
        logits = logits - logits.max(axis=0, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=0, keepdims=True)).astype(np.float32)


def _nearest_centre_spans(starts: Sequence[int], side: int, length: int):
    """(start, lo, hi) per window: the pixels [lo, hi) nearest to that window's centre."""
    centres = [start + side / 2.0 for start in starts]
    bounds = [0] + [int(round((a + b) / 2.0)) for a, b in zip(centres, centres[1:])] + [length]
    return [(start, bounds[i], bounds[i + 1]) for i, start in enumerate(starts)]


def _resize_scores(scores: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Labels (h, w) nearest or scores (h, w, C) area-resized to ``size_hw``."""
    if scores.shape[:2] == tuple(size_hw):
        return scores
    if scores.ndim == 2:
        return cv2.resize(scores.astype(np.int32), size_hw[::-1],
                          interpolation=cv2.INTER_NEAREST).astype(np.int64)
    resized = [cv2.resize(scores[..., c], size_hw[::-1], interpolation=cv2.INTER_AREA)
               for c in range(scores.shape[-1])]
    return np.stack(resized, axis=-1)


def load_tflite(path: str, tiling: Optional[str] = None) -> TfliteModel:
    """``TfliteModel`` for ``tflite:PATH``.

    ``EVS_TFLITE_TILING`` (tiles|resize) overrides the default tiling (for measurements).
    """
    return TfliteModel(path, tiling=tiling or os.environ.get('EVS_TFLITE_TILING', 'tiles'))
