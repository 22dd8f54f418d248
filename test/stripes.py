"""Moving stripe frames labelled 0..3 for Refiner and training tests (DIS can track them)."""

from types import SimpleNamespace

import numpy as np


def moving_stripes(texture: np.ndarray, count: int, shift_px: int):
    """Return ``count`` frames of uint8 (H, W + count*shift_px, 3) ``texture`` moving right.

    Frame i shows the texture from column (count - i) * shift_px on, W wide, with stripes of 24
    px labelled 0..3 in its blue channel; each frame carries ``image_bgr`` and ``labels``
    (uint8 (H, W)).
    """
    height, total_width = texture.shape[:2]
    width = total_width - count * shift_px
    labels = (np.arange(total_width) // 24 % 4).astype(np.uint8)
    frames = []
    for index in range(count):
        start = (count - index) * shift_px
        image = texture[:, start:start + width].copy()
        image[..., 0] = labels[start:start + width] * 60
        frames.append(SimpleNamespace(image_bgr=image,
                                      labels=np.tile(labels[start:start + width], (height, 1))))
    return frames
