"""Deterministic fake segmentation networks for `python:MODULE:FACTORY` backends in tests.

`make_model()` follows the documented python-backend contract: a callable taking a BGR uint8
(H, W, 3) image and returning float32 class probabilities (C, h, w), with `num_classes`.
"""

import numpy as np

NUM_CLASSES = 19


class ColourBands:
    """Class = blue channel // 14 (mod 19), as one-hot probabilities at 1/4 resolution."""

    num_classes = NUM_CLASSES

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        small = image_bgr[::4, ::4, 0].astype(np.int64)
        classes = (small // 14) % NUM_CLASSES
        probs = np.zeros((NUM_CLASSES,) + classes.shape, np.float32)
        np.put_along_axis(probs, classes[None], 1.0, axis=0)
        return probs


def make_model():
    return ColourBands()
