"""The synchronous reference pipeline for one stream (paper §3, Fig. 2; design §3).

Every call to :meth:`EvsPipeline.process` runs the whole per-frame work in the caller's thread:
keyframes run the network, other frames are propagated with DIS flow (W on) or hold the last
labels (W off), and with R on IAM + the Refiner correct the inconsistent regions. The real-time
runtime (:mod:`evs_ros.pipeline.runtime`) runs the same steps in two workers; this class is what
evaluation and tests use because its output does not depend on timing.

Conventions:

* The first frame, a frame after :meth:`EvsPipeline.reset`, and a frame whose resolution differs
  from the previous one are keyframes (the state is dropped: flow between different sizes is
  meaningless).
* W off computes no flow at all (that is why it is fast); the inconsistent fraction is then NaN.
  When W is switched on at run time, the first frame holds the labels (there is no previous gray
  frame yet) and propagation resumes from the next one.
* Without a Refiner, or with a network that gives no features, R still works: the Refiner gets
  ``features_warped=None``; with no Refiner at all R acts as off (``FrameInfo.refined=False``).
"""

import math
import time
from typing import Any, Optional

import cv2
import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.pipeline.results import FrameInfo, FrameResult
from evs_ros.pipeline.scheduler import KeyframeScheduler
from evs_ros.pipeline.state import (
    PropagationState, aligned_features, aligned_probs, apply_refinement, consecutive_flows,
    current_probs, mask_to_camera, propagate, state_from_prediction,
)


def downscale_image(image_bgr: np.ndarray, downscale: float) -> np.ndarray:
    """Return the uint8 (round(H*D), round(W*D), 3) network input (INTER_AREA); D=1: as is."""
    if downscale >= 1.0:
        return image_bgr
    height, width = image_bgr.shape[:2]
    size_wh = (max(1, round(width * downscale)), max(1, round(height * downscale)))
    return cv2.resize(image_bgr, size_wh, interpolation=cv2.INTER_AREA)


class EvsPipeline:
    """EVS for one camera stream, synchronously.

    Args:
        config: settings; ``config.operating_point`` is the initial operating point.
        model: any :class:`~evs_ros.models.base.SegmentationModel`.
        refiner: a :class:`~evs_ros.models.base.RefinerModel`, or None (R acts as off).
        flow_estimator: anything with ``calc(gray_cur, gray_prev) -> flow_cur_to_prev``; default
            a :class:`~evs_ros.flow.FlowEstimator` built from ``config.flow``.
    """

    def __init__(self, config: EvsConfig, model, refiner=None, flow_estimator=None):
        self._config = config
        self._model = model
        self._refiner = refiner
        self._flow = flow_estimator or FlowEstimator(config.flow)
        self._scheduler = KeyframeScheduler(config.operating_point)
        self._seq = 0
        self.reset()

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next frame."""
        return self._scheduler.operating_point

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Use ``op`` from the next frame on (the keyframe count carries over)."""
        self._scheduler.set_operating_point(op)

    def reset(self) -> None:
        """Forget the state: the next frame is a keyframe."""
        self._state: Optional[PropagationState] = None
        self._gray_prev: Optional[np.ndarray] = None
        self._last_fraction = math.nan
        self._scheduler.reset()

    def process(self, image_bgr: np.ndarray, stamp_ns: int = 0, meta: Any = None) -> FrameResult:
        """Segment one frame.

        Args:
            image_bgr: uint8 (H, W, 3) BGR camera frame.
            stamp_ns: the frame's stamp, passed through to ``FrameInfo.stamp_ns``.
            meta: any object, passed through to ``FrameResult.meta``.

        Returns:
            The frame's :class:`FrameResult` (labels at camera resolution).
        """
        start = time.perf_counter()
        camera_hw = image_bgr.shape[:2]
        if self._state is not None and self._state.labels.shape != camera_hw:
            self.reset()
        op = self._scheduler.operating_point
        keyframe = self._scheduler.decide(self._last_fraction)
        timings = {}
        if keyframe:
            result = self._keyframe(image_bgr, op, timings)
        else:
            result = self._propagated(image_bgr, op, timings)
        result.meta = meta
        self._finish_info(result.info, op, keyframe, stamp_ns, timings, start)
        self._last_fraction = result.info.inconsistent_fraction
        return result

    def _keyframe(self, image_bgr, op, timings) -> FrameResult:
        start = time.perf_counter()
        prediction = self._model.predict(downscale_image(image_bgr, op.downscale))
        timings['inference_ms'] = (time.perf_counter() - start) * 1000.0
        self._state = state_from_prediction(prediction, image_bgr.shape[:2])
        self._gray_prev = to_gray(image_bgr) if op.warp else None
        return self._result(None, math.nan, refined=False)

    def _propagated(self, image_bgr, op, timings) -> FrameResult:
        gray_cur = to_gray(image_bgr) if op.warp else None
        gray_prev, self._gray_prev = self._gray_prev, gray_cur
        if gray_cur is None or gray_prev is None:
            self._state.age += 1  # W off (or W just switched on): hold the last labels
            return self._result(None, math.nan, refined=False)
        flow_cur_to_prev, flow_prev_to_cur = consecutive_flows(
            self._flow, gray_cur, gray_prev, self._config.iam, timings)
        self._state, iam = propagate(self._state, flow_cur_to_prev, self._config.iam,
                                     flow_prev_to_cur=flow_prev_to_cur, timings=timings)
        refined = op.refine and self._refiner is not None
        if refined:
            self._refine(image_bgr, op, iam.mask, timings)
        return self._result(iam.mask, float(iam.inconsistent_fraction), refined)

    def _refine(self, image_bgr, op, mask, timings) -> None:
        features = aligned_features(self._state, timings)
        probs_warped = aligned_probs(self._state, timings)
        start = time.perf_counter()
        probs_refiner = self._refiner.refine(downscale_image(image_bgr, op.downscale),
                                             probs_warped, features)
        apply_refinement(self._state, probs_refiner, mask)
        timings['refine_ms'] = (time.perf_counter() - start) * 1000.0

    def _result(self, mask, inconsistent_fraction, refined) -> FrameResult:
        state = self._state
        info = FrameInfo(frames_since_keyframe=state.age, refined=refined,
                         inconsistent_fraction=inconsistent_fraction)
        return FrameResult(info=info, labels=state.labels, probs=current_probs(state),
                           mask=mask_to_camera(mask, state.labels.shape))

    def _finish_info(self, info, op, keyframe, stamp_ns, timings, start) -> None:
        info.seq = self._seq
        self._seq += 1
        info.stamp_ns = int(stamp_ns)
        info.keyframe = keyframe
        info.operating_point = op.name
        for key, value in timings.items():
            setattr(info, key, value)
        info.total_ms = (time.perf_counter() - start) * 1000.0
        info.latency_ms = info.total_ms
