"""The small interface between the pipeline and any segmentation network (paper §3.2).

The paper treats the segmentation network as a black box; so does evs_ros. A network is anything
with ``num_classes`` and ``predict(image_bgr) -> Prediction``. A Refiner (paper §3.5) is anything
with ``refine(image_bgr, probs_warped, features_warped) -> probs``. Arrays cross this boundary as
numpy so that the flow worker can warp them on the CPU.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

try:  # Python 3.8+: typing.Protocol
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object


@dataclass
class Prediction:
    """Output of a segmentation network for one frame.

    Attributes:
        probs: float32 (C, h, w) class probabilities in [0, 1] summing to 1 over C, at the
            network's own output resolution (ICNet: 1/4 of its input). The pipeline resizes.
        features: float32 (Cf, hf, wf) low-level features the Refiner reuses (ICNet: conv3_1
            of the 1/2-resolution branch, 1/16 of the input), or None for networks without them.
    """

    probs: np.ndarray
    features: Optional[np.ndarray] = None


class SegmentationModel(Protocol):
    """A segmentation network as the pipeline sees it."""

    num_classes: int

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """Segment one frame.

        Args:
            image_bgr: uint8 (H, W, 3) BGR image, any size (already downscaled by D).
        """


class RefinerModel(Protocol):
    """The Refiner (paper §3.5, Fig. 4) as the pipeline sees it."""

    def refine(self, image_bgr: np.ndarray, probs_warped: np.ndarray,
               features_warped: Optional[np.ndarray]) -> np.ndarray:
        """Predict P_refiner for the current frame.

        Args:
            image_bgr: uint8 (H, W, 3) current frame (downscaled by D like keyframes).
            probs_warped: float32 (C, h, w) keyframe probabilities warped to this frame.
            features_warped: float32 (Cf, hf, wf) keyframe low-level features warped to this
                frame, or None.

        Returns:
            float32 (C, h, w) probabilities at the shape of ``probs_warped``.
        """
