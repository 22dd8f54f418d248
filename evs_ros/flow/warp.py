"""Warping labels, probabilities and features with optical flow (paper §3.3, eq. 1-2).

Flow convention (used everywhere in evs_ros): ``flow_x_to_y`` is a float32 array (H, W, 2) holding,
for each pixel ``p = (col, row)`` of frame x, the displacement ``(dx, dy)`` in pixels such that
``p + flow_x_to_y[p]`` is where that point is in frame y. ``FlowEstimator.calc(cur, prev)`` returns
``flow_cur_to_prev``; warping the previous frame's data onto the current frame is then a backward
warp, ``out[p] = prev[p + flow_cur_to_prev[p]]``, i.e. ``cv2.remap(prev, grid + flow)``.

Pixels whose source position falls outside the previous frame are handled by ``border``:

* ``'hold'`` (default): the nearest border pixel of the previous frame is used
  (``cv2.BORDER_REPLICATE``); users never see holes.
* ``'ignore'``: the output is ``fill`` there (255 = Cityscapes ignore label for labels, 0.0 for
  dense maps), so callers can tell that nothing was known about those pixels.

When OpenCV has ``cv2.WARP_RELATIVE_MAP`` (4.10+) the flow is passed to ``cv2.remap`` as a relative
map, which saves adding the pixel grid; older OpenCV (e.g. ROS Humble's 4.5) gets ``grid + flow``
with the grid cached per shape. Both give identical results.
"""

from functools import lru_cache
from typing import Tuple

import cv2
import numpy as np

BORDER_MODES = ('hold', 'ignore')
_CHUNK_CHANNELS = 4
"""cv2.remap interpolates 4 interleaved channels for about the cost of 1, so dense maps are
warped 4 planes at a time."""
_USE_RELATIVE_MAP = hasattr(cv2, 'WARP_RELATIVE_MAP')
_INTER_NEAREST_EXACT = getattr(cv2, 'INTER_NEAREST_EXACT', cv2.INTER_NEAREST)


@lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """Return the read-only float32 (height, width, 2) grid of pixel coordinates ``(col, row)``.

    Cached per shape: the hot path adds it to a flow without rebuilding it.
    """
    cols = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    grid = np.empty((height, width, 2), np.float32)
    grid[..., 0] = cols[None, :]
    grid[..., 1] = rows[:, None]
    grid.setflags(write=False)
    return grid


def identity_flow(height: int, width: int) -> np.ndarray:
    """Return a zero flow, float32 (height, width, 2): every pixel stays where it is."""
    return np.zeros((height, width, 2), np.float32)


def _check_flow(flow: np.ndarray, shape_hw: Tuple[int, int], what: str) -> None:
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f'flow must be float32 (H, W, 2), got shape {flow.shape}')
    if tuple(flow.shape[:2]) != tuple(shape_hw):
        raise ValueError(f'flow is {flow.shape[:2]} but {what} is {tuple(shape_hw)}; '
                         'resize it first with resize_flow(flow, size_hw)')


def _border_args(border: str) -> int:
    if border == 'hold':
        return cv2.BORDER_REPLICATE
    if border == 'ignore':
        return cv2.BORDER_CONSTANT
    raise ValueError(f'border={border!r} is not one of {", ".join(BORDER_MODES)}')


def _remap(src, flow, interpolation, border_mode, fill, dst=None):
    """Backward-warp ``src`` with ``flow`` (same H, W): ``dst[p] = src[p + flow[p]]``."""
    if _USE_RELATIVE_MAP:
        return cv2.remap(src, flow, None, interpolation | cv2.WARP_RELATIVE_MAP, dst=dst,
                         borderMode=border_mode, borderValue=fill)
    absolute_map = pixel_grid(*flow.shape[:2]) + flow
    return cv2.remap(src, absolute_map, None, interpolation, dst=dst, borderMode=border_mode,
                     borderValue=fill)


def _as_flow32(flow: np.ndarray) -> np.ndarray:
    return flow if flow.dtype == np.float32 else flow.astype(np.float32)


def warp_labels(labels_prev: np.ndarray, flow_cur_to_prev: np.ndarray, border: str = 'hold',
                fill: int = 255) -> np.ndarray:
    """Propagate labels of the previous frame to the current frame (paper eq. 1-2).

    Nearest-neighbour backward warp: ``out[p] = labels_prev[round(p + flow_cur_to_prev[p])]``.

    Args:
        labels_prev: uint8 (H, W) label ids of the previous frame (255 = ignore); uint16 works
            the same way.
        flow_cur_to_prev: float32 (H, W, 2) flow from the current to the previous frame.
        border: ``'hold'`` replicates the nearest border label where the source falls outside the
            image; ``'ignore'`` writes ``fill`` there.
        fill: label written outside the image with ``border='ignore'``.

    Returns:
        (H, W) labels of the current frame, dtype of ``labels_prev``.
    """
    _check_flow(flow_cur_to_prev, labels_prev.shape[:2], 'labels_prev')
    border_mode = _border_args(border)
    return _remap(labels_prev, _as_flow32(flow_cur_to_prev), cv2.INTER_NEAREST, border_mode,
                  int(fill))


def resize_flow(flow: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Resize a flow field to ``size_hw = (h, w)`` and rescale its vectors accordingly.

    Shrinking by 2x or more samples the source pixel nearest to each target pixel centre
    (``INTER_NEAREST_EXACT``): DIS flow is smooth at that scale (8 px patches every 4 px), and
    it is several times cheaper than bilinear (docs/benchmarks.md, "Design measurements").
    Other sizes are resized bilinearly.

    Args:
        flow: float32 (H, W, 2) displacements in pixels of the (H, W) grid.
        size_hw: target (h, w).

    Returns:
        float32 (h, w, 2) displacements in pixels of the (h, w) grid (``dx * w / W``,
        ``dy * h / H``); the input itself when the size already matches.
    """
    height, width = int(size_hw[0]), int(size_hw[1])
    src_height, src_width = flow.shape[:2]
    if (height, width) == (src_height, src_width):
        return _as_flow32(flow)
    shrinking = 2 * height <= src_height and 2 * width <= src_width
    interpolation = _INTER_NEAREST_EXACT if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(_as_flow32(flow), (width, height), interpolation=interpolation)
    scale_x, scale_y = width / src_width, height / src_height
    if scale_x == scale_y:
        resized *= np.float32(scale_x)
    else:  # per-channel scale; numpy's broadcasting over a last axis of 2 is slow here
        cv2.multiply(resized, (scale_x, scale_y, 0.0, 0.0), dst=resized)
    return resized


def _warp_planes(planes: np.ndarray, flow: np.ndarray, border_mode: int,
                 fill: float) -> np.ndarray:
    """Warp float32 (C, h, w) planes, 4 interleaved channels per cv2.remap call."""
    channels, height, width = planes.shape
    out = np.empty_like(planes)
    packed = np.zeros((height, width, _CHUNK_CHANNELS), np.float32)
    warped = np.empty_like(packed)
    border_value = (fill,) * _CHUNK_CHANNELS
    for start in range(0, channels, _CHUNK_CHANNELS):
        count = min(_CHUNK_CHANNELS, channels - start)
        if count == 1:
            _remap(planes[start], flow, cv2.INTER_LINEAR, border_mode, fill, dst=out[start])
        elif count == _CHUNK_CHANNELS:
            cv2.merge(list(planes[start:start + count]), packed)    # (4, h, w) -> (h, w, 4)
            _remap(packed, flow, cv2.INTER_LINEAR, border_mode, border_value, dst=warped)
            cv2.split(warped, list(out[start:start + count]))      # (h, w, 4) -> (4, h, w)
        else:  # 2 or 3 planes: still one 4-channel remap, the 4-channel path is the fast one
            pairs = [index for channel in range(count) for index in (channel, channel)]
            cv2.mixChannels(list(planes[start:start + count]), [packed], pairs)
            _remap(packed, flow, cv2.INTER_LINEAR, border_mode, border_value, dst=warped)
            cv2.mixChannels([warped], list(out[start:start + count]), pairs)
    return out


def warp_dense(array_prev: np.ndarray, flow_cur_to_prev: np.ndarray, border: str = 'hold',
               fill: float = 0.0) -> np.ndarray:
    """Propagate dense maps (probabilities, features) of the previous frame, bilinearly.

    The maps keep their own resolution (h, w); a flow of another size (typically the full-frame
    flow) is resized with :func:`resize_flow` first. Callers that warp several maps of the same
    size should resize the flow once and pass the (h, w, 2) result.

    Args:
        array_prev: float32 (C, h, w) maps or (h, w) single map of the previous frame.
        flow_cur_to_prev: float32 (H, W, 2) flow from the current to the previous frame.
        border: ``'hold'`` replicates border values; ``'ignore'`` writes ``fill``.
        fill: value written outside the image with ``border='ignore'``.

    Returns:
        float32 array of the same shape as ``array_prev``, aligned with the current frame.
    """
    if array_prev.ndim not in (2, 3):
        raise ValueError(f'array_prev must be (C, h, w) or (h, w), got shape {array_prev.shape}')
    border_mode = _border_args(border)
    height, width = array_prev.shape[-2:]
    flow = resize_flow(flow_cur_to_prev, (height, width))
    planes = np.ascontiguousarray(array_prev, dtype=np.float32)
    if planes.ndim == 2:
        return _remap(planes, flow, cv2.INTER_LINEAR, border_mode, float(fill))
    return _warp_planes(planes, flow, border_mode, float(fill))


def compose_flows(flow_b_to_a: np.ndarray, flow_c_to_b: np.ndarray) -> np.ndarray:
    """Chain two flows: ``flow_c_to_a(p) = flow_c_to_b(p) + flow_b_to_a(p + flow_c_to_b(p))``.

    Used to carry a late keyframe result (frame a) forward to frame c in one warp. The lookup into
    ``flow_b_to_a`` is bilinear; positions outside frame b take the nearest border vector.

    Args:
        flow_b_to_a: float32 (H, W, 2) flow from frame b to frame a.
        flow_c_to_b: float32 (H, W, 2) flow from frame c to frame b.

    Returns:
        float32 (H, W, 2) flow from frame c to frame a.
    """
    _check_flow(flow_b_to_a, flow_c_to_b.shape[:2], 'flow_c_to_b')
    flow_c_to_b = _as_flow32(flow_c_to_b)
    looked_up = _remap(_as_flow32(flow_b_to_a), flow_c_to_b, cv2.INTER_LINEAR,
                       cv2.BORDER_REPLICATE, 0)
    looked_up += flow_c_to_b
    return looked_up
