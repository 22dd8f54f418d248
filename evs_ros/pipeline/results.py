"""Per-frame outputs of the pipeline and the runtime (paper §3; design §5 ``status`` topic)."""

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple

import cv2
import numpy as np

STAGES = ('flow_ms', 'warp_ms', 'iam_ms', 'inference_ms', 'refine_ms')
"""Stage timing fields of :class:`FrameInfo`, in pipeline order."""


class StageTimer:
    """Milliseconds of one frame's stages (the ``*_ms`` fields of :class:`FrameInfo`).

    ``with timer.stage('warp_ms'): ...`` adds the block's wall time to the stage; a stage that
    runs several times in a frame (warping before and after a catch-up) sums up.
    """

    def __init__(self):
        self.ms: Dict[str, float] = {}
        self._start_s = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        start_s = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start_s) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        """Add ``ms`` to stage ``name`` (a time measured elsewhere, e.g. by the inference)."""
        self.ms[name] = self.ms.get(name, 0.0) + ms

    def fill(self, info: 'FrameInfo') -> None:
        """Write the stages into ``info``, and ``total_ms`` since the timer was made."""
        for name, ms in self.ms.items():
            setattr(info, name, ms)
        info.total_ms = (time.perf_counter() - self._start_s) * 1000.0


class _NoTimer(StageTimer):
    """A timer that keeps nothing: for callers that do not report stage times."""

    def add(self, name: str, ms: float) -> None:
        """Keep nothing."""


NO_TIMER = _NoTimer()
"""The timer of calls that report no stage times."""


@dataclass
class FrameInfo:
    """What happened to one frame (one ``status`` message).

    Attributes:
        seq: index of the frame among the frames this pipeline/stream processed (0-based).
        stamp_ns: the input stamp, passed through.
        keyframe: the frame was sent to the segmentation network.
        frames_since_keyframe: age of the output labels, i.e. the number of propagation (or hold)
            steps since the keyframe they come from; 0 = the network's own output for this frame.
        refined: IAM + Refiner changed this frame's probabilities (R on and a Refiner exists).
        inconsistent_fraction: IAM's fraction in [0, 1] of inconsistent pixels; NaN when not
            computed (keyframes, W off).
        operating_point: name of the operating point used.
        flow_ms, warp_ms, iam_ms, inference_ms, refine_ms: stage wall times; 0 when the stage did
            not run for this frame. In the runtime, ``inference_ms`` is the network time of a
            keyframe result used by this output (0 otherwise).
        wait_ms: time the frame waited for keyframes in flight (``runtime.wait_for_keyframes``).
        total_ms: processing time of this frame (sum of its stages plus bookkeeping).
        latency_ms: from ``process``/``submit`` to the result being ready.
        dropped_frames: input frames dropped (overload) since the previous output.
    """

    seq: int = 0
    stamp_ns: int = 0
    keyframe: bool = False
    frames_since_keyframe: int = 0
    refined: bool = False
    inconsistent_fraction: float = math.nan
    operating_point: str = ''
    flow_ms: float = 0.0
    warp_ms: float = 0.0
    iam_ms: float = 0.0
    inference_ms: float = 0.0
    refine_ms: float = 0.0
    wait_ms: float = 0.0
    total_ms: float = 0.0
    latency_ms: float = 0.0
    dropped_frames: int = 0


@dataclass
class FrameResult:
    """Labels for one frame plus everything a consumer may want to publish.

    Attributes:
        info: see :class:`FrameInfo`.
        labels: uint8 (H, W) class ids at camera resolution, 255 = ignore/unknown.
        probs: float32 (C, h, w) class probabilities at the network output resolution on
            keyframes and refined frames; None on other frames (propagated probabilities are
            warped lazily, only when a refinement needs them) and before the first keyframe.
            Shared with the pipeline state: treat as read-only.
        mask_low: float32 (h, w) IAM inconsistency in [0, 1] at the probability resolution, or
            None when not computed; :attr:`mask` is it at camera resolution.
        meta: any user object given with the frame (e.g. the ROS header), passed through unchanged.
    """

    info: FrameInfo
    labels: np.ndarray
    probs: Optional[np.ndarray] = None
    mask_low: Optional[np.ndarray] = None
    meta: Any = field(default=None)

    @property
    def mask(self) -> np.ndarray:
        """IAM inconsistency at camera resolution: uint8 (H, W), 0..255.

        255 = fully inconsistent; zeros when not computed. Made on first use: most consumers never
        ask.
        """
        cached = self.__dict__.get('_mask')
        if cached is None:
            cached = self.__dict__['_mask'] = mask_to_camera(self.mask_low, self.labels.shape)
        return cached


def mask_to_camera(mask: Optional[np.ndarray], camera_hw: Tuple[int, int]) -> np.ndarray:
    """Return uint8 (H, W) 0..255 from a float32 (h, w) [0, 1] mask (zeros for None)."""
    height, width = camera_hw
    if mask is None:
        return np.zeros((height, width), np.uint8)
    mask_u8 = np.clip(np.asarray(mask, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if mask_u8.shape == (height, width):
        return mask_u8
    return cv2.resize(mask_u8, (width, height), interpolation=cv2.INTER_LINEAR)
