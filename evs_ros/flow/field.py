"""A flow field handed out at the resolutions its consumers need (paper §3.3).

DIS runs on frames reduced by ``flow.scale`` / ``flow.max_width``; the propagation needs the
flow at the probability resolution (IAM, the keyframe chain), at the feature resolution, for
catch-up at 1/4 of the camera, and, only when labels are warped at camera resolution, at the
camera resolution. :class:`FlowField` keeps the flow where DIS computed it and resizes it once per
resolution asked for, so nothing is upsampled to the camera size unless something uses it.
"""

from typing import Dict, Tuple

import numpy as np

from evs_ros.flow.warp import resize_flow


class FlowField:
    """``flow_cur_to_prev`` of one frame pair, at any resolution.

    Args:
        native: float32 (h, w, 2) displacements in pixels of its own (h, w) grid.
        camera_hw: (H, W) of the frames the flow belongs to.
    """

    def __init__(self, native: np.ndarray, camera_hw: Tuple[int, int]):
        self.native = native
        self.camera_hw = tuple(int(v) for v in camera_hw)
        self._sizes: Dict[Tuple[int, int], np.ndarray] = {native.shape[:2]: native}

    @classmethod
    def of(cls, flow) -> 'FlowField':
        """``flow`` itself, or a float32 (H, W, 2) camera-resolution array wrapped."""
        return flow if isinstance(flow, cls) else cls(flow, flow.shape[:2])

    def at(self, size_hw: Tuple[int, int]) -> np.ndarray:
        """float32 (h', w', 2) flow in pixels of ``size_hw`` (resized once, then cached)."""
        size_hw = (int(size_hw[0]), int(size_hw[1]))
        if size_hw not in self._sizes:
            self._sizes[size_hw] = resize_flow(self.native, size_hw)
        return self._sizes[size_hw]

    @property
    def full(self) -> np.ndarray:
        """float32 (H, W, 2) at the camera resolution."""
        return self.at(self.camera_hw)
