"""The frame the network sees (its scale), and how its probabilities become camera-size labels.

Scale. A network labels streets best at the scale it was trained at: a Cityscapes network trained
on half-size frames (ESPNetv2, SegFormer ``-512``) sees a 2048x1024 camera's objects at twice
their training size at full resolution. ``config.model.input_short_side`` fixes the short side of
the network input at D = 1 (``0``: the network's training scale, resolved by
:func:`evs_ros.models.loading.load_models` from the catalogue entry or the network's
``trained_short_side``, and attached to the model as ``input_short_side``; ``-1`` or unknown: the
camera's own size). The operating point's D then scales from there, so ``D = 0.5`` always means
half the work of D = 1 whatever the camera::

    scale = D * input_short_side / min(H, W)     (scale = D when input_short_side is None)

A scale above 1 enlarges the frame (a 480x360 camera and a network trained at short side 512).
When the scale a camera gets is far from the training scale, :func:`advise_scale` says once which
setting matches it.

Labels. The keyframe labels at camera resolution come from the probabilities at the network's
output resolution either by an argmax there and a nearest-neighbour upsampling (``nearest``), or
by an argmax of the bilinearly upsampled probabilities (``bilinear``, how published accuracies
are measured). :func:`bilinear_argmax` computes the latter exactly but only where it can differ
from the former: a pixel whose four neighbouring probability cells agree on their argmax keeps
it (a convex combination of vectors sharing an argmax has that argmax).
"""

import logging
import math
from typing import Optional, Tuple

import cv2
import numpy as np

LOGGER = logging.getLogger('evs_ros')
SCALE_TOLERANCE = 1.15
"""Advise when the network sees frames more than 15 % off its training scale."""
_ADVISED = set()


def input_short_side(model) -> Optional[int]:
    """Return the short side (px) of the model's input at D = 1, or None (the camera's size)."""
    value = getattr(model, 'input_short_side', None)
    return int(value) if value else None


def network_scale(camera_hw: Tuple[int, int], downscale: float,
                  short_side: Optional[int]) -> float:
    """Factor from the camera frame to the network input (see the module docstring)."""
    if not short_side:
        return float(min(downscale, 1.0))
    return float(downscale) * short_side / float(min(camera_hw))


def scaled_hw(camera_hw: Tuple[int, int], scale: float) -> Tuple[int, int]:
    """(h, w) of a frame of ``camera_hw`` resized by ``scale`` (>= 1 px each)."""
    if scale == 1.0:
        return tuple(camera_hw)
    return (max(1, round(camera_hw[0] * scale)), max(1, round(camera_hw[1] * scale)))


def resize_for_network(image_bgr: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (H, W, 3) -> the network input at ``scale`` (INTER_AREA down, INTER_LINEAR up)."""
    height_width = scaled_hw(image_bgr.shape[:2], scale)
    if height_width == tuple(image_bgr.shape[:2]):
        return image_bgr
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image_bgr, (height_width[1], height_width[0]), interpolation=interpolation)


def describe_input(model) -> str:
    """Return the network's input scale in words, for start-up logs."""
    short_side = input_short_side(model)
    trained = getattr(model, 'trained_short_side', None)
    seen = f'short side {short_side} px at D=1' if short_side else "the camera's size at D=1"
    trained_text = f'trained at {trained} px' if trained else 'training scale unknown'
    window = getattr(model, 'window_hw', None)
    windows = f', {window[0]}x{window[1]} sliding windows' if window else ''
    return f'network input: {seen} ({trained_text}){windows}'


def advise_scale(model, camera_hw: Tuple[int, int], downscale: float, name: str = '') -> None:
    """Log once per (model, camera size, D) when the network sees frames far off its scale.

    Far: more than :data:`SCALE_TOLERANCE` off the scale it was trained at. The line names the
    setting that fits.
    """
    trained = getattr(model, 'trained_short_side', None)
    if not trained:
        return
    key = (id(model), tuple(camera_hw), float(downscale))
    if key in _ADVISED:
        return
    _ADVISED.add(key)
    short = min(camera_hw)
    seen = network_scale(camera_hw, 1.0, input_short_side(model)) * short
    ratio = seen / float(trained)
    if abs(math.log(ratio)) <= math.log(SCALE_TOLERANCE):
        return
    fit = trained / float(short)
    options = ['model.input_short_side 0 (its training scale)']
    if not input_short_side(model) and fit <= 1.0:
        options.append(f'operating_point.downscale {fit:.2g}')
    LOGGER.warning('%scamera frames %dx%d reach the network at short side %d px at D=1, %.2gx the '
                   '%d px it was trained at (objects %s than it learned them): set %s',
                   f'{name}: ' if name else '', camera_hw[1], camera_hw[0], round(seen), ratio,
                   trained, 'larger' if ratio > 1 else 'smaller', ' or '.join(options))


def bilinear_argmax(probs: np.ndarray, camera_hw: Tuple[int, int],
                    labels_low: Optional[np.ndarray] = None) -> np.ndarray:
    """Return uint8 (H, W) argmax of float32 (C, h, w) probabilities resized bilinearly.

    The resize to ``camera_hw`` follows OpenCV's INTER_LINEAR sampling (pixel centres, borders
    clamped); only pixels between cells of different argmax are interpolated (see the module
    docstring).
    """
    height, width = camera_hw
    if labels_low is None:
        labels_low = np.argmax(probs, axis=0).astype(np.uint8)
    if probs.shape[-2:] == (height, width):
        return labels_low.copy()
    rows0, rows1, row_weights = _taps(probs.shape[-2], height)
    cols0, cols1, col_weights = _taps(probs.shape[-1], width)
    labels = labels_low.take(rows0, axis=0).take(cols0, axis=1)
    mixed = _mixed_cells(labels_low).take(rows0, axis=0).take(cols0, axis=1)
    # a zero weight never mixes: only pixels whose taps really differ are interpolated
    mixed &= (row_weights > 0)[:, None] | (col_weights > 0)[None, :]
    ys, xs = np.nonzero(mixed)
    if ys.size:
        cells = np.ascontiguousarray(np.moveaxis(probs, 0, -1), dtype=np.float32)
        cells = cells.reshape(-1, probs.shape[0])  # (h * w, C): one row per cell
        stride = probs.shape[-1]
        top0, top1 = rows0[ys] * stride, rows1[ys] * stride
        left, right = cols0[xs], cols1[xs]
        wy, wx = row_weights[ys, None], col_weights[xs, None]
        top = _lerp(cells[top0 + left], cells[top0 + right], wx)
        bottom = _lerp(cells[top1 + left], cells[top1 + right], wx)
        labels[ys, xs] = np.argmax(_lerp(top, bottom, wy), axis=1)
    return labels


def _lerp(first: np.ndarray, second: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``first + (second - first) * weight``, in place in ``second`` (a fresh gather)."""
    second -= first
    second *= weight
    second += first
    return second


def _mixed_cells(labels_low: np.ndarray) -> np.ndarray:
    """Return bool (h, w): True where a cell's 2x2 group has more than one label.

    Cell (r, c) differs from (r, c+1), (r+1, c) or (r+1, c+1) (borders clamped), i.e. the 2x2 group
    a pixel interpolates from does not agree on one class.
    """
    padded = np.pad(labels_low, ((0, 1), (0, 1)), mode='edge')
    here = padded[:-1, :-1]
    return (here != padded[:-1, 1:]) | (here != padded[1:, :-1]) | (here != padded[1:, 1:])


def _taps(source: int, target: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per target index: the two source indices and the weight of the second (INTER_LINEAR)."""
    position = (np.arange(target, dtype=np.float64) + 0.5) * (source / float(target)) - 0.5
    first = np.floor(position)
    weight = (position - first).astype(np.float32)
    first = first.astype(np.int64)
    weight[first < 0] = 0.0
    first = np.clip(first, 0, source - 1)
    second = np.minimum(first + 1, source - 1)
    weight[second == first] = 0.0
    return first, second, weight
