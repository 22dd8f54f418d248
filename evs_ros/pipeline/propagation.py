"""One stream's propagation: the current state and the keyframes in flight (paper §3, design §4).

:class:`Propagation` owns the transitions of a stream's labels from one frame to the next: it
adopts the newest keyframe result that arrived (carried forward through the flows computed
meanwhile, :mod:`evs_ros.pipeline.catchup`), or propagates the current
:class:`~evs_ros.pipeline.state.PropagationState` (eq. 1-3), holds it (W off), or refines it
(eq. 4). The keyframe bookkeeping (requests in flight, their flow chains, failures) lives here
too, beside the state it replaces. The :class:`~evs_ros.pipeline.stepper.FrameStepper` decides
keyframes, computes flow and talks to the network; it asks this object for each transition.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from evs_ros.config import IamConfig
from evs_ros.flow import FlowField
from evs_ros.pipeline.catchup import PendingKeyframe, chain_size
from evs_ros.pipeline.results import StageTimer
from evs_ros.pipeline.state import PropagationState


@dataclass
class Advance:
    """What moving the state to a new frame did.

    Attributes:
        iam: IAM's result for the frame (propagated, or a keyframe carried forward over several
            frames), or None (a keyframe's own frame, a hold, or nothing known yet).
        adopted: a keyframe result replaced the state.
        failed: keyframe requests that failed since the last frame (the caller counts them and
            asks for a new keyframe).
    """

    iam: object = None
    adopted: bool = False
    failed: int = 0


class Propagation:
    """The propagation state of one stream plus the keyframe requests still in flight.

    Args:
        wait: ``wait(request) -> bool`` blocks until a request is done; False if the stream
            closes first. Used only for the very first keyframe (nothing to propagate yet).
    """

    def __init__(self, wait: Callable[[object], bool]):
        self._wait = wait
        self.iam_config = IamConfig()
        self.labels_from = 'previous'
        self.reset()

    def reset(self) -> None:
        """Forget the state and the keyframes in flight (their results are ignored)."""
        self.state: Optional[PropagationState] = None
        self.pending: List[PendingKeyframe] = []

    def configure(self, iam_config: IamConfig, labels_from: str) -> None:
        """Use these IAM and label-warp settings from the next transition on."""
        self.iam_config, self.labels_from = iam_config, labels_from

    @property
    def staleness(self) -> float:
        """Frames since the current labels' keyframe plus one (inf before the first keyframe)."""
        return self.state.age + 1 if self.state is not None else float('inf')

    def drop_failed(self) -> int:
        """Forget the keyframe requests that failed; returns how many."""
        failed = [pending for pending in self.pending if pending.failed]
        self.pending = [pending for pending in self.pending if not pending.failed]
        return len(failed)

    def flow_needed(self, seq: int, new: Optional[PendingKeyframe]) -> bool:
        """Tell whether frame ``seq`` needs the flow to the previous frame (W on).

        False only when this frame's own keyframe result (``new``) is already there and nothing
        else is in flight (always the case with an inline inference): it replaces the state.
        """
        pendings = self.pending + ([new] if new is not None else [])
        if any(not pending.request.done for pending in pendings):
            return True
        usable = [pending for pending in pendings if pending.request.ok]
        return not usable or usable[-1].frame_seq != seq

    def wait_in_flight(self) -> bool:
        """Block until every keyframe in flight is done; False if the stream closes first."""
        return all(self._wait(pending.request) for pending in list(self.pending))

    def advance(self, seq: int, flow: Optional[FlowField], flow_backward,
                new: Optional[PendingKeyframe], timer: StageTimer) -> Advance:
        """Move the state to frame ``seq``.

        The keyframes in flight take one more step (``flow``: current -> previous frame, or None
        when no flow was computed); ``new`` (this frame's keyframe request, if any) joins them.
        The newest arrived keyframe result is adopted, carried forward to ``seq``; otherwise the
        current state is propagated with ``flow`` (and ``flow_backward`` for exact IAM), or held
        without flow. Before the first keyframe there is nothing to propagate: the newest
        request is waited for.
        """
        self._extend_pending(flow, timer)
        if new is not None:
            self.pending.append(new)
        step = self._catch_up(seq, timer)
        if self.state is None:
            if self.pending and not self._wait(self.pending[-1].request):
                return step
            first = self._catch_up(seq, timer)
            return Advance(first.iam, first.adopted, step.failed + first.failed)
        if not step.adopted:
            step.iam = self._propagate(flow, flow_backward, timer)
        return step

    def refine(self, probs_refiner: np.ndarray, mask: np.ndarray) -> None:
        """Blend a Refiner result into the current state where IAM's ``mask`` is set (eq. 4)."""
        self.state.refine(probs_refiner, mask)

    def _extend_pending(self, flow: Optional[FlowField], timer: StageTimer) -> None:
        """Extend every keyframe in flight by one frame; composition time goes to ``warp_ms``."""
        if not self.pending:
            return
        if flow is None:
            for pending in self.pending:
                pending.extend(None)
            return
        with timer.stage('warp_ms'):
            flow_chain = flow.at(chain_size(flow.camera_hw))
            for pending in self.pending:
                pending.extend(flow_chain)

    def _catch_up(self, seq: int, timer: StageTimer) -> Advance:
        """Adopt the newest arrived keyframe result, carried forward to frame ``seq``."""
        arrived = [pending for pending in self.pending if pending.request.done]
        if not arrived:
            return Advance()
        self.pending = [pending for pending in self.pending if not pending.request.done]
        failed = sum(pending.failed for pending in arrived)
        usable = [pending for pending in arrived if pending.request.ok]
        if not usable:
            return Advance(failed=failed)
        timer.add('inference_ms', usable[-1].request.elapsed_ms)
        self.state, iam = usable[-1].carry_forward(seq, self.iam_config, self.labels_from, timer)
        return Advance(iam, adopted=True, failed=failed)

    def _propagate(self, flow: Optional[FlowField], flow_backward, timer: StageTimer):
        if flow is None:
            self.state.hold()  # W off (or W just switched on): hold the last labels
            return None
        return self.state.propagate(flow, self.iam_config, flow_prev_to_cur=flow_backward,
                                    labels_from=self.labels_from, timer=timer)
