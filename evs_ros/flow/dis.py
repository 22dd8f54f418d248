"""Dense optical flow between consecutive frames on the CPU (paper §3.3, §4.3.1, Fig. 6).

The paper uses DIS (Kroeger et al.) with no variational refinement, finest scale 2, patch size 8
and 12 gradient-descent iterations, which is exactly OpenCV's ``DISOPTICAL_FLOW_PRESET_ULTRAFAST``
(patch stride 4); :func:`dis_parameters` reads the settings back so tests can check it.
Gunnar Farneback (2 pyramid levels, window 9, 15 iterations) is the paper's comparison (Fig. 6).

Direction: :meth:`FlowEstimator.calc` returns ``flow_cur_to_prev`` (see ``evs_ros.flow.warp``):
for each pixel ``p`` of the current frame, ``p + flow[p]`` is where it was in the previous frame.
"""

from typing import Dict

import cv2
import numpy as np

from evs_ros.config import FlowConfig
from evs_ros.flow.field import FlowField

_DIS_PRESETS = {
    'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
    'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
MIN_FLOW_WIDTH = 256
"""Flow is never computed on frames narrower than this (unless the camera's are)."""
# Paper Fig. 6: "2 layers pyramid, averaging window of 9 pixels and 15 iterations". OpenCV's
# ``levels`` counts the layers including the original image.
FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=2, winsize=9, iterations=15, poly_n=5,
                        poly_sigma=1.1, flags=0)


def to_gray(image_bgr: np.ndarray) -> np.ndarray:
    """Convert a uint8 BGR (H, W, 3), BGRA (H, W, 4) or gray (H, W[, 1]) image to uint8 (H, W)."""
    if image_bgr.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got {image_bgr.dtype}; convert with '
                         'np.clip(image, 0, 255).astype(np.uint8)')
    if image_bgr.ndim == 2:
        return image_bgr
    channels = image_bgr.shape[2] if image_bgr.ndim == 3 else 0
    if channels == 1:
        return image_bgr[..., 0]
    if channels == 3:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    if channels == 4:
        return cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f'expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image_bgr.shape}')


def create_dis(config: FlowConfig) -> 'cv2.DISOpticalFlow':
    """Build an OpenCV DIS object for ``config.dis_preset`` (or the explicit 'custom' fields)."""
    if config.dis_preset != 'custom':
        return cv2.DISOpticalFlow_create(_DIS_PRESETS[config.dis_preset])
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    dis.setFinestScale(config.finest_scale)
    dis.setPatchSize(config.patch_size)
    dis.setPatchStride(config.patch_stride)
    dis.setGradientDescentIterations(config.gd_iterations)
    dis.setVariationalRefinementIterations(config.variational_refinement_iterations)
    return dis


def dis_parameters(dis: 'cv2.DISOpticalFlow') -> Dict[str, int]:
    """Read the settings of a DIS object back, with FlowConfig's field names."""
    return {
        'finest_scale': dis.getFinestScale(),
        'patch_size': dis.getPatchSize(),
        'patch_stride': dis.getPatchStride(),
        'gd_iterations': dis.getGradientDescentIterations(),
        'variational_refinement_iterations': dis.getVariationalRefinementIterations(),
    }


class FlowEstimator:
    """Flow from the current to the previous frame, configured by a :class:`FlowConfig`.

    Keeps one DIS object for its lifetime (creating it is not free; ``calc`` does not depend on
    earlier calls because initial flow is off). Not thread-safe: one estimator per worker.
    OpenCV's thread count is the caller's business (``cv2.setNumThreads``; the paper uses 1).
    """

    def __init__(self, config: FlowConfig = FlowConfig()):
        self.config = config
        self._dis = create_dis(config) if config.method == 'dis' else None
        self._shrunk = (None, None)  # (last gray frame shrunk, its shrunk copy)

    @property
    def parameters(self) -> Dict[str, object]:
        """The effective settings (DIS values read back from OpenCV), for logs and reports."""
        params = {'method': self.config.method, 'scale': self.config.scale}
        if self._dis is not None:
            params.update(preset=self.config.dis_preset, **dis_parameters(self._dis))
        else:
            params.update(FARNEBACK_PARAMS)
        return params

    def calc(self, gray_cur: np.ndarray, gray_prev: np.ndarray) -> np.ndarray:
        """Compute ``flow_cur_to_prev``.

        Args:
            gray_cur: uint8 (H, W) current frame (use :func:`to_gray` on colour frames).
            gray_prev: uint8 (H, W) previous frame.

        Returns:
            float32 (H, W, 2): ``(dx, dy)`` in full-resolution pixels such that pixel ``p`` of the
            current frame was at ``p + flow[p]`` in the previous frame. With a scale below 1
            (:meth:`scale_for`) the flow is computed on frames resized by it and resized back
            (vectors scaled by the exact size ratio, i.e. about ``1 / scale``).
        """
        return self.calc_field(gray_cur, gray_prev).full

    def calc_field(self, gray_cur: np.ndarray, gray_prev: np.ndarray) -> FlowField:
        """:meth:`calc` as a :class:`~evs_ros.flow.field.FlowField`.

        Kept at the resolution DIS ran at, resized only to the resolutions asked for.
        """
        if gray_cur.shape != gray_prev.shape or gray_cur.ndim != 2:
            raise ValueError(f'need two gray (H, W) frames of one size, got {gray_cur.shape} '
                             f'and {gray_prev.shape}; use to_gray() on colour frames')
        height, width = gray_cur.shape
        scale = self.scale_for(width)
        if scale >= 1.0:
            return FlowField(self._calc_native(gray_cur, gray_prev), (height, width))
        size_wh = (max(8, round(width * scale)), max(8, round(height * scale)))
        small_prev = self._shrink(gray_prev, size_wh)
        small_cur = self._shrink(gray_cur, size_wh)
        return FlowField(self._calc_native(small_cur, small_prev), (height, width))

    def scale_for(self, width: int) -> float:
        """Return the scale flow is computed at for frames ``width`` px wide.

        ``config.scale``, capped so that the frames are at most ``config.max_width`` wide (0: no
        cap), and never below :data:`MIN_FLOW_WIDTH` px (DIS needs texture to track; the frame's
        own width if less).
        """
        scale = self.config.scale
        if self.config.max_width and width > self.config.max_width:
            scale = min(scale, self.config.max_width / width)
        return max(scale, min(1.0, MIN_FLOW_WIDTH / max(1, width)))

    def _shrink(self, gray: np.ndarray, size_wh) -> np.ndarray:
        """``gray`` resized to ``size_wh``.

        The previous frame of a stream is the last current frame, so it is shrunk only once (the
        array object is the key).
        """
        last, small = self._shrunk
        if last is gray and small.shape[::-1] == tuple(size_wh):
            return small
        small = gray
        while small.shape[1] >= 2 * size_wh[0] and small.shape[0] >= 2 * size_wh[1]:
            halved = ((small.shape[1] + 1) // 2, (small.shape[0] + 1) // 2)
            small = cv2.resize(small, halved, interpolation=cv2.INTER_AREA)  # fast 2x path
        if small.shape[::-1] != tuple(size_wh):
            small = cv2.resize(small, size_wh, interpolation=cv2.INTER_AREA)
        self._shrunk = (gray, small)
        return small

    def _calc_native(self, gray_cur: np.ndarray, gray_prev: np.ndarray) -> np.ndarray:
        if self._dis is not None:
            # DIS: I0 = cur, I1 = prev gives I0(p) ~ I1(p + flow(p)), i.e. cur -> prev.
            return self._dis.calc(gray_cur, gray_prev, None)
        return cv2.calcOpticalFlowFarneback(gray_cur, gray_prev, None, **FARNEBACK_PARAMS)
