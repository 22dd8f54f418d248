"""Sliding-window inference: any segmentation network over overlapping windows of a frame.

How the SegFormer B0-B5 Cityscapes figures were published (1024x1024 windows over 2048x1024
frames, stride 768: mmsegmentation's ``slide`` mode). ``config.model.window`` turns it on
(:func:`evs_ros.models.loading.load_models` wraps the network). Windows start every
``STRIDE_FRACTION`` of a window, at multiples of the network's output stride (so every window's
output cells are cells of the whole frame's grid; the last window, which reaches the frame's
edge, may be up to one stride smaller); each window's probabilities (and features) are placed at
the window's position in the output grid and averaged where windows overlap. A frame no larger
than one window is one plain ``predict``.
"""

import math
from typing import List, Optional, Tuple

import numpy as np

from evs_ros.models.base import Prediction

STRIDE_FRACTION = 0.75
"""Window stride as a fraction of the window (mmsegmentation's SegFormer Cityscapes: 768/1024)."""


def window_starts(length: int, window: int, stride: int, align: int = 1) -> List[int]:
    """Return window start offsets, multiples of ``align``, covering ``[0, length)``.

    Windows of ``window`` about every ``stride`` (the last one reaches ``length``); ``[0]`` when
    one window covers it.
    """
    if length <= window:
        return [0]
    last = -(-(length - window) // align) * align
    stride = max(align, stride // align * align)
    count = (last + stride - 1) // stride + 1
    return [min(index * stride, last) for index in range(count)]


class SlidingWindowModel:
    """``model`` run on overlapping ``window_hw`` windows (see the module docstring).

    Every attribute it does not define (``num_classes``, ``class_names``, ``feature_channels``,
    ``trained_short_side``, ...) is the wrapped network's.

    Args:
        model: a ``SegmentationModel`` whose outputs cover its input at a fixed stride.
        window_hw: (height, width) of a window in network-input pixels.
    """

    def __init__(self, model, window_hw: Tuple[int, int]):
        self.model = model
        self.window_hw = (int(window_hw[0]), int(window_hw[1]))
        self.stride_hw = tuple(max(1, int(math.ceil(side * STRIDE_FRACTION)))
                               for side in self.window_hw)

    def __getattr__(self, name):
        if name == 'model':  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """uint8 (H, W, 3) BGR -> Prediction on the grid ``model.predict`` gives for the frame."""
        height, width = image_bgr.shape[:2]
        if height <= self.window_hw[0] and width <= self.window_hw[1]:
            return self.model.predict(image_bgr)
        first = self._predict_window(image_bgr, 0, 0)
        shape = (min(height, self.window_hw[0]), min(width, self.window_hw[1]))
        probs = _Mosaic(first.probs, shape, (height, width))
        features = (None if first.features is None else
                    _Mosaic(first.features, shape, (height, width)))
        align = _alignment([probs] + ([features] if features is not None else []))
        rows = window_starts(height, self.window_hw[0], self.stride_hw[0], align)
        cols = window_starts(width, self.window_hw[1], self.stride_hw[1], align)
        for top in rows:
            for left in cols:
                prediction = first if (top, left) == (0, 0) else self._predict_window(
                    image_bgr, top, left)
                crop_hw = (min(height - top, self.window_hw[0]),
                           min(width - left, self.window_hw[1]))
                flush = (top + crop_hw[0] >= height, left + crop_hw[1] >= width)
                probs.add(prediction.probs, top, left, flush)
                if features is not None:
                    features.add(prediction.features, top, left, flush)
        return Prediction(probs=probs.mean(), features=None if features is None else
                          features.mean())

    def _predict_window(self, image_bgr: np.ndarray, top: int, left: int) -> Prediction:
        crop = image_bgr[top:top + self.window_hw[0], left:left + self.window_hw[1]]
        return self.model.predict(np.ascontiguousarray(crop))


def _alignment(mosaics) -> int:
    """Pixels between window starts that keep every output grid aligned.

    The largest output stride when all are whole numbers, else 1.
    """
    strides = [stride for mosaic in mosaics for stride in mosaic.stride]
    if all(abs(stride - round(stride)) < 1e-6 and round(stride) >= 1 for stride in strides):
        return int(max(round(stride) for stride in strides))
    return 1


class _Mosaic:
    """Sum and count of per-window maps on the whole frame's output grid."""

    def __init__(self, first: np.ndarray, window_hw, frame_hw):
        self.stride = (window_hw[0] / first.shape[-2], window_hw[1] / first.shape[-1])
        grid = (int(math.ceil(frame_hw[0] / self.stride[0] - 1e-6)),
                int(math.ceil(frame_hw[1] / self.stride[1] - 1e-6)))
        self.total = np.zeros((first.shape[0],) + grid, np.float32)
        self.count = np.zeros(grid, np.float32)

    def add(self, values: np.ndarray, top: int, left: int, flush_hw=(False, False)) -> None:
        """Add a window's map at frame offset (top, left).

        A window flush with the frame's bottom / right edge is placed flush with the grid's (no
        uncovered last cell).
        """
        row = _cell(top, self.stride[0], values.shape[-2], self.count.shape[0], flush_hw[0])
        col = _cell(left, self.stride[1], values.shape[-1], self.count.shape[1], flush_hw[1])
        rows = min(values.shape[-2], self.count.shape[0] - row)
        cols = min(values.shape[-1], self.count.shape[1] - col)
        self.total[:, row:row + rows, col:col + cols] += values[:, :rows, :cols]
        self.count[row:row + rows, col:col + cols] += 1.0

    def mean(self) -> np.ndarray:
        return self.total / np.maximum(self.count, 1.0)[None]


def _cell(offset: int, stride: float, size: int, grid: int, flush: bool) -> int:
    """First grid cell of a window map of ``size`` cells starting at pixel ``offset``."""
    if flush:
        return max(0, grid - size)
    return min(int(round(offset / stride)), grid - 1)


def describe_window(window_hw: Optional[Tuple[int, int]]) -> str:
    """'1024x1024 sliding windows' or 'the whole frame'."""
    return (f'{window_hw[0]}x{window_hw[1]} sliding windows' if window_hw else 'the whole frame')
