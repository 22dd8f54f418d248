"""Carrying a late keyframe result forward to the current frame ("catch-up", design §4).

In the runtime the network runs asynchronously: the result for keyframe k arrives while frame
n > k is processed. Meanwhile the flow worker kept computing flows n -> n-1; a
:class:`PendingKeyframe` composes them as they come into one flow n -> k (one ``compose_flows``
per frame, so memory stays bounded however late the result is), and
:meth:`PendingKeyframe.carry_forward` propagates the keyframe state with it in one step.
:class:`~evs_ros.pipeline.propagation.Propagation` keeps the keyframes in flight of a stream.

The chain is kept at 1/4 of the camera resolution (``CHAIN_DOWNSCALE``): composing at camera
resolution costs more than DIS itself per frame and pending keyframe, at 1/4 about a tenth of
that (docs/benchmarks.md, "Design measurements"). Keyframe labels come from probabilities at 1/4
of the network input anyway, so little is lost. With an inline inference (the synchronous
pipeline) a keyframe's result is there at once and no chain is ever built.
"""

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from evs_ros.config import IamConfig
from evs_ros.flow import FlowField, compose_flows
from evs_ros.pipeline.results import NO_TIMER, StageTimer

CHAIN_DOWNSCALE = 4


@dataclass(eq=False)
class PendingKeyframe:
    """A keyframe request in flight and the flow from the current frame back to its frame.

    Attributes:
        request: the :class:`~evs_ros.pipeline.inference.InferenceRequest`; its result is the
            keyframe's :class:`~evs_ros.pipeline.state.PropagationState`.
        frame_seq: index of the keyframe in the stream.
        flow_to_keyframe: float32 (H/4, W/4, 2) flow current frame -> keyframe at the chain
            resolution; None while the current frame is the keyframe itself.
        chain_broken: a frame without flow (W off) came in between: the result is then held
            (used as is), like every W-off frame.
    """

    request: Any
    frame_seq: int
    flow_to_keyframe: Optional[np.ndarray] = None
    chain_broken: bool = False

    @property
    def failed(self) -> bool:
        """The network raised for this keyframe."""
        return self.request.done and self.request.error is not None

    def extend(self, flow_cur_to_prev: Optional[np.ndarray]) -> None:
        """Append one frame step: float32 (H/4, W/4, 2) at the chain resolution, or None."""
        if flow_cur_to_prev is None:
            self.chain_broken = True
        elif self.flow_to_keyframe is None:
            self.flow_to_keyframe = flow_cur_to_prev
        else:
            self.flow_to_keyframe = compose_flows(self.flow_to_keyframe, flow_cur_to_prev)

    def carry_forward(self, seq: int, iam_config: IamConfig, labels_from: str = 'previous',
                      timer: StageTimer = NO_TIMER):
        """Return (state at frame ``seq``, IamResult or None) from the arrived keyframe state."""
        state = self.request.result
        steps = seq - self.frame_seq
        if steps == 0 or self.chain_broken or self.flow_to_keyframe is None:
            state.hold(steps)
            return state, None
        flow = FlowField(self.flow_to_keyframe, state.labels.shape)
        return state, state.propagate(flow, iam_config, steps=steps, labels_from=labels_from,
                                      timer=timer)


def chain_size(camera_hw: Tuple[int, int]) -> Tuple[int, int]:
    """Return (h, w) of the composed flow chain for a camera of ``camera_hw``."""
    return tuple(max(1, -(-size // CHAIN_DOWNSCALE)) for size in camera_hw)
