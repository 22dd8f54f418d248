"""Inconsistencies Attention Module, the numpy/OpenCV part (paper §3.4, eq. 3-4, Fig. 3).

``L_F`` is the previous labels warped forward to the current frame; ``L_BF`` is ``L_F`` warped
backward to the previous frame and forward again. Where they differ the flow is unreliable
(eq. 3); the binary mask is dilated and smoothed into ``M`` in [0, 1], and the final
probabilities are ``M * P_refiner + (1 - M) * P_warped`` (eq. 4).

The backward flow (previous -> current) is by default approximated by ``-flow_cur_to_prev`` read
at the same pixel, which costs no second DIS call (``IamConfig.backward_flow='negated'``); pass the
real ``flow_prev_to_cur`` when ``backward_flow='dis'``.

Pixels whose forward or backward warps read from outside the image are *not* counted as
inconsistent: nothing is known about them, and counting them would make every camera pan look
unreliable. Internally the labels travel as uint16 with a validity bit (256) and the warps use
``border='ignore'`` with fill 0, so the bit is lost exactly where a warp left the image; a label
id of 255 in the input is therefore treated like any other label.
"""

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from evs_ros.config import IamConfig
from evs_ros.flow.warp import resize_flow, warp_labels


@dataclass
class IamResult:
    """Output of :func:`compute_iam`, all at the resolution of the input labels (h, w).

    Attributes:
        labels_warped: uint8 (h, w) ``L_F``, the previous labels warped forward, exactly
            ``warp_labels(labels_prev, flow)`` (``border='hold'``: no holes), ready to be the
            propagated labels at this resolution.
        labels_bf: uint8 (h, w) ``L_BF``, ``L_F`` warped backward then forward; 255 where a warp
            on its chain left the image (such pixels never count as inconsistent).
        mask_binary: bool (h, w), eq. 3: ``L_F != L_BF`` where all warps stayed inside the image.
        mask: float32 (h, w) in [0, 1], ``mask_binary`` dilated and box-smoothed; 1.0 on every
            pixel of ``mask_binary``.
        inconsistent_fraction: mean of ``mask_binary`` over all pixels, in [0, 1].
    """

    labels_warped: np.ndarray
    labels_bf: np.ndarray
    mask_binary: np.ndarray
    mask: np.ndarray
    inconsistent_fraction: float


_VALID_BIT = np.uint16(256)


def _warp_tracked(tracked: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp uint16 (h, w) labels that carry a validity bit (256); outside the image gives 0."""
    return warp_labels(tracked, flow, border='ignore', fill=0)


def _labels_of(tracked: np.ndarray) -> np.ndarray:
    """uint8 labels of uint16 tracked labels, 255 where the validity bit is missing."""
    labels = (tracked & 0xFF).astype(np.uint8)
    labels[tracked < _VALID_BIT] = 255
    return labels


def _forward_labels(labels_prev, tracked_f, flow_forward) -> np.ndarray:
    """L_F with border='hold': the tracked warp's labels, redone only if some left the image."""
    if (tracked_f >= _VALID_BIT).all():
        return (tracked_f & 0xFF).astype(np.uint8)
    return warp_labels(labels_prev, flow_forward, border='hold')


def _backward_flow(flow_cur_to_prev, flow_prev_to_cur, config, size_hw):
    if flow_prev_to_cur is not None:
        return resize_flow(flow_prev_to_cur, size_hw)
    if config.backward_flow == 'dis':
        raise ValueError("iam.backward_flow='dis' needs flow_prev_to_cur (a second DIS call "
                         "with the frames swapped); pass it, or set iam.backward_flow='negated'")
    return np.negative(flow_cur_to_prev)


def _soften(mask_binary: np.ndarray, config: IamConfig) -> np.ndarray:
    """Dilate (square, radius dilation_px), box-blur (smoothing_px), keep binary pixels at 1."""
    mask = mask_binary.astype(np.uint8)
    if config.dilation_px > 0:
        side = 2 * config.dilation_px + 1
        mask = cv2.dilate(mask, np.ones((side, side), np.uint8))
    mask = mask.astype(np.float32)
    if config.smoothing_px > 1:
        mask = cv2.blur(mask, (config.smoothing_px, config.smoothing_px),
                        borderType=cv2.BORDER_REPLICATE)
    np.clip(mask, 0.0, 1.0, out=mask)
    mask[mask_binary] = 1.0
    return mask


def compute_iam(labels_prev: np.ndarray, flow_cur_to_prev: np.ndarray, config: IamConfig,
                flow_prev_to_cur: Optional[np.ndarray] = None) -> IamResult:
    """Forward-backward label consistency of a flow (paper eq. 3 plus dilation and smoothing).

    Args:
        labels_prev: uint8 (h, w) labels of the previous frame, at the resolution the mask is
            wanted at (the paper: the probability resolution, 1/4 of the network input).
        flow_cur_to_prev: float32 (H, W, 2) flow current -> previous; resized to (h, w) if needed
            (pass it already resized to skip that).
        config: dilation, smoothing and backward-flow settings.
        flow_prev_to_cur: optional float32 (H, W, 2) flow previous -> current, used whenever
            given; without it the backward flow is ``-flow_cur_to_prev`` read at the same pixel
            (``backward_flow='negated'``; with ``'dis'`` it is required).

    Returns:
        IamResult at (h, w).
    """
    if labels_prev.dtype != np.uint8 or labels_prev.ndim != 2:
        raise ValueError(f'labels_prev must be uint8 (h, w), got {labels_prev.dtype} '
                         f'{labels_prev.shape}')
    size_hw = labels_prev.shape
    flow_forward = resize_flow(flow_cur_to_prev, size_hw)
    flow_backward = _backward_flow(flow_forward, flow_prev_to_cur, config, size_hw)
    tracked_prev = labels_prev.astype(np.uint16) | _VALID_BIT
    tracked_f = _warp_tracked(tracked_prev, flow_forward)          # L_F, on the current frame
    tracked_b = _warp_tracked(tracked_f, flow_backward)            # L_B, on the previous frame
    tracked_bf = _warp_tracked(tracked_b, flow_forward)            # L_BF, on the current frame
    # tracked_bf keeps the valid bit only if every warp on its chain stayed inside the image
    # (and then so did L_F's, which reads the same position p + flow(p)).
    mask_binary = (tracked_f != tracked_bf) & (tracked_bf >= _VALID_BIT)
    return IamResult(
        labels_warped=_forward_labels(labels_prev, tracked_f, flow_forward),
        labels_bf=_labels_of(tracked_bf),
        mask_binary=mask_binary,
        mask=_soften(mask_binary, config),
        inconsistent_fraction=np.count_nonzero(mask_binary) / mask_binary.size,
    )


def blend_probs(probs_refiner: np.ndarray, probs_warped: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """Eq. 4: ``mask * probs_refiner + (1 - mask) * probs_warped``.

    Args:
        probs_refiner: float32 (C, h, w) Refiner probabilities.
        probs_warped: float32 (C, h, w) probabilities warped from the previous frame.
        mask: float32 (h', w') IAM mask in [0, 1]; bilinearly resized to (h, w) if it differs.

    Returns:
        float32 (C, h, w) refined probabilities.
    """
    if probs_refiner.shape != probs_warped.shape:
        raise ValueError(f'probs_refiner {probs_refiner.shape} and probs_warped '
                         f'{probs_warped.shape} must have one shape (C, h, w)')
    height, width = probs_warped.shape[-2:]
    mask = np.asarray(mask, np.float32)
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    blended = probs_refiner * mask
    blended += probs_warped * (1.0 - mask)
    return blended.astype(np.float32, copy=False)
