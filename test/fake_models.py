"""Deterministic fake segmentation networks for `python:MODULE:FACTORY` backends in tests.

`make_model()` follows the documented python-backend contract: a callable taking a BGR uint8
(H, W, 3) image and returning float32 class probabilities (C, h, w), with `num_classes`.
"""

import time

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


class SlowColourBands(ColourBands):
    """:class:`ColourBands` taking ``delay_s`` per call, like a network slower than the flow."""

    def __init__(self, delay_s: float = 0.05):
        self.delay_s = delay_s

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().__call__(image_bgr)


def make_slow_model():
    return SlowColourBands(0.05)


class FailingOnBlue(ColourBands):
    """:class:`ColourBands` that raises on very blue images (mean blue > 200), like a bad model."""

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        if image_bgr[..., 0].mean() > 200:
            raise RuntimeError('fake network failure on a very blue image')
        return super().__call__(image_bgr)


def make_failing_model():
    return FailingOnBlue()
