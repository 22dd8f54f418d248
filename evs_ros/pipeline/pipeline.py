"""The synchronous reference pipeline for one stream (paper §3, Fig. 2; design §3).

Every call to :meth:`EvsPipeline.process` runs the whole per-frame work in the caller's thread:
the one per-frame :class:`~evs_ros.pipeline.stepper.FrameStepper` with an
:class:`~evs_ros.pipeline.inference.InlineInference`, so keyframes run the network at once. The
real-time runtime (:mod:`evs_ros.pipeline.runtime`) drives the same stepper from its flow worker;
this class is what evaluation and tests use because its output does not depend on timing.

Conventions:

* The first frame, a frame after :meth:`EvsPipeline.reset`, and a frame whose resolution differs
  from the previous one are keyframes (the state is dropped: flow between different sizes is
  meaningless).
* W off computes no flow at all (that is why it is fast); the inconsistent fraction is then NaN.
  When W is switched on at run time, the first frame holds the labels (there is no previous gray
  frame yet) and propagation resumes from the next one.
* Without a Refiner, or with a network that gives no features, R still works: the Refiner gets
  ``features_warped=None``; with no Refiner at all R acts as off (``FrameInfo.refined=False``).
* A model's exception propagates to the caller.
"""

from dataclasses import replace
from typing import Any

import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint
from evs_ros.pipeline.inference import InlineInference
from evs_ros.pipeline.results import FrameResult
from evs_ros.pipeline.stepper import FrameStepper

__all__ = ['EvsPipeline']


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
        self._stepper = FrameStepper(config, InlineInference(model, refiner), flow_estimator)

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next frame."""
        return self._stepper.operating_point

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Use ``op`` from the next frame on (the keyframe count carries over)."""
        self._stepper.set_config(replace(self._stepper.config, operating_point=op))

    def set_config(self, config: EvsConfig) -> None:
        """Use ``config``'s operating point, flow and IAM settings from the next frame on."""
        self._stepper.set_config(config)

    def reset(self) -> None:
        """Forget the state: the next frame is a keyframe."""
        self._stepper.reset()

    def process(self, image_bgr: np.ndarray, stamp_ns: int = 0, meta: Any = None) -> FrameResult:
        """Segment one frame.

        Args:
            image_bgr: uint8 (H, W, 3) BGR camera frame.
            stamp_ns: the frame's stamp, passed through to ``FrameInfo.stamp_ns``.
            meta: any object, passed through to ``FrameResult.meta``.

        Returns:
            The frame's :class:`FrameResult` (labels at camera resolution).
        """
        result = self._stepper.step(image_bgr, stamp_ns)
        result.meta = meta
        result.info.latency_ms = result.info.total_ms
        return result
