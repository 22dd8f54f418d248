"""What a stream knows about its current frame and the transitions that change it (§3.3-3.5).

:class:`PropagationState` is built from a keyframe's prediction and changed in place by its own
transitions only: :meth:`~PropagationState.propagate` (eq. 1-2, then IAM, eq. 3),
:meth:`~PropagationState.hold` (W off), the lazy alignments
(:meth:`~PropagationState.aligned_probs`, :meth:`~PropagationState.aligned_features`) and
:meth:`~PropagationState.refine` (eq. 4). Arrays are never written into: a transition binds new
ones, so a :class:`~evs_ros.pipeline.results.FrameResult` that holds the previous labels keeps
them. The keyframes in flight and their catch-up live beside it in
:mod:`evs_ros.pipeline.propagation`.

Labels at camera resolution come from the network's probabilities by an argmax at the probability
resolution followed by a nearest-neighbour upsampling: upsampling the probabilities first would
make keyframes and refined frames cost more than DIS itself (docs/benchmarks.md, "Design
measurements"). ``model.upsample: bilinear`` takes keyframe labels from the bilinearly upsampled
probabilities instead, computed only where the two can differ
(:func:`~evs_ros.pipeline.network_input.bilinear_argmax`; section 14 measures it). On refined
frames only the pixels the IAM mask touches take the refined labels; the others keep the
full-resolution warped labels (eq. 4 restricted to where it matters).
"""

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import cv2
import numpy as np

from evs_ros.config import IamConfig
from evs_ros.flow import FlowField, compose_flows, warp_dense, warp_labels
from evs_ros.models.base import Prediction
from evs_ros.pipeline.network_input import bilinear_argmax
from evs_ros.pipeline.results import NO_TIMER, StageTimer

MAX_PROBS_STEPS = 8
"""Step flows kept for the probabilities before they are composed into one (bounded memory)."""


@dataclass
class PropagationState:
    """What a stream knows about its current frame, derived from the last keyframe.

    Attributes:
        labels: uint8 (H, W) labels at camera resolution.
        labels_low: uint8 (h, w) argmax labels at the probability resolution (IAM input).
        probs: float32 (C, h, w) probabilities. They are warped lazily: ``probs_steps`` says
            how to align them with the current frame. Operating points without refinement never
            need them between keyframes, which saves one C-channel remap and one flow
            composition per propagated frame.
        probs_steps: float32 (h, w, 2) flows at the probability resolution, one per step since
            ``probs`` were aligned (oldest first, current -> previous each); composed in that
            order when a refinement needs the probabilities. Empty when aligned.
        features: float32 (Cf, hf, wf) keyframe low-level features, or None. They are warped
            lazily: ``features_flow`` says how to align them with the current frame.
        features_flow: float32 (hf, wf, 2) flow from the current frame to the frame the features
            are aligned with (flows composed at the feature resolution), or None if aligned.
        age: propagation/hold steps since the keyframe (0 = the keyframe itself).
        anchor_labels_low: uint8 (h, w) labels at the probability resolution of the last frame
            the networks set (the keyframe, or the last refined frame).
        anchor_chain: float32 (h, w, 2) flow from the current frame to that frame (composed at
            the probability resolution; ``flow.labels_from: keyframe`` only), None at it.
    """

    labels: np.ndarray
    labels_low: np.ndarray
    probs: np.ndarray
    features: Optional[np.ndarray] = None
    features_flow: Optional[np.ndarray] = None
    age: int = 0
    probs_steps: Tuple[np.ndarray, ...] = ()
    anchor_labels_low: Optional[np.ndarray] = None
    anchor_chain: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.anchor_labels_low is None:  # a fresh state: its own labels are the anchor
            self.anchor_labels_low = self.labels_low

    @classmethod
    def from_prediction(cls, prediction: Prediction, camera_hw: Tuple[int, int],
                        upsample: str = 'nearest') -> 'PropagationState':
        """Build the keyframe state from the network's output (any probability resolution).

        The camera-size labels come by ``upsample``: ``nearest`` (of the argmax) or ``bilinear``
        (argmax of bilinearly upsampled probabilities; ``config.model.upsample``).
        """
        probs = np.asarray(prediction.probs, dtype=np.float32)
        if probs.ndim != 3:
            raise ValueError(f'Prediction.probs must be float32 (C, h, w), got shape '
                             f'{probs.shape}')
        labels_low = argmax_labels(probs)
        features = prediction.features
        if features is not None:
            features = np.asarray(features, dtype=np.float32)
        labels = (bilinear_argmax(probs, camera_hw, labels_low) if upsample == 'bilinear' else
                  upsample_labels(labels_low, camera_hw))
        return cls(labels=labels, labels_low=labels_low, probs=probs, features=features)

    def copy(self) -> 'PropagationState':
        """Return an independent state (arrays are shared: transitions never write into them)."""
        return replace(self)

    def propagate(self, flow_cur_to_prev, iam_config: IamConfig, steps: int = 1,
                  flow_prev_to_cur=None, labels_from: str = 'previous',
                  timer: StageTimer = NO_TIMER):
        """Warp the labels to the current frame (eq. 1-2), then run IAM (eq. 3).

        Probabilities and features are not warped here: the probabilities' step flows are kept
        and the features' pending flow is composed; each is warped once, when a refinement needs
        it (:meth:`aligned_probs`, :meth:`aligned_features`).

        Args:
            flow_cur_to_prev: :class:`~evs_ros.flow.field.FlowField` (or float32 (H, W, 2) at
                camera resolution) from the current frame to this state's frame (one frame back,
                or several frames composed).
            iam_config: IAM settings; IAM runs at the probability resolution.
            steps: frames between the two (added to ``age``).
            flow_prev_to_cur: the exact backward flow for IAM (same forms), or None.
            labels_from: ``'previous'``: the camera-resolution labels warped with the flow at
                camera resolution (paper eq. 1); ``'keyframe'``: the anchor's low-resolution
                labels warped once through the composed chain, then upsampled
                (``flow.labels_from``).
            timer: ``warp_ms`` and ``iam_ms`` are added to it.

        Returns:
            The frame's IamResult.
        """
        with timer.stage('warp_ms'):
            field = FlowField.of(flow_cur_to_prev)
            flow_low = field.at(self.probs.shape[-2:])
            labels_low, labels = self._warped_labels(field, flow_low, labels_from)
            self.probs_steps = _bounded(self.probs_steps + (flow_low,))
            if self.features is not None:
                self.features_flow = _compose_pending(self.features_flow,
                                                      field.at(self.features.shape[-2:]))
        with timer.stage('iam_ms'):
            iam = _run_iam(self.labels_low, flow_low, iam_config, flow_prev_to_cur)
        if labels_from != 'keyframe':  # keep the anchor current: a switch of mode starts here
            labels_low = self.anchor_labels_low = iam.labels_warped
        self.labels, self.labels_low = labels, labels_low
        self.age += steps
        return iam

    def _warped_labels(self, field: FlowField, flow_low: np.ndarray, labels_from: str):
        """Return (labels_low or None, labels) of the current frame; keeps the anchor chain."""
        if labels_from == 'keyframe':
            self.anchor_chain = _compose_pending(self.anchor_chain, flow_low)
            labels_low = warp_labels(self.anchor_labels_low, self.anchor_chain)
            return labels_low, upsample_labels(labels_low, self.labels.shape)
        self.anchor_chain = None
        return None, warp_labels(self.labels, field.full)

    def hold(self, steps: int = 1) -> None:
        """Keep the labels for ``steps`` more frames (W off, or W just switched on)."""
        self.age += steps

    def aligned_probs(self, timer: StageTimer = NO_TIMER) -> np.ndarray:
        """Return float32 (C, h, w) probabilities aligned with the current frame (P_warped).

        Composes the pending step flows in order and warps once (``warp_ms``); keeps the result.
        """
        if self.probs_steps:
            with timer.stage('warp_ms'):
                self.probs = warp_dense(self.probs, _fold(self.probs_steps))
                self.probs_steps = ()
        return self.probs

    @property
    def current_probs(self) -> Optional[np.ndarray]:
        """The probabilities if aligned with the current frame without extra work, else None.

        None on propagated frames without refinement (:meth:`aligned_probs` computes them).
        """
        return None if self.probs_steps else self.probs

    def aligned_features(self, timer: StageTimer = NO_TIMER) -> Optional[np.ndarray]:
        """Return float32 (Cf, hf, wf) features aligned with the current frame (or None).

        Warps them once with the composed pending flow (``warp_ms``); keeps the result.
        """
        if self.features is not None and self.features_flow is not None:
            with timer.stage('warp_ms'):
                self.features = warp_dense(self.features, self.features_flow)
                self.features_flow = None
        return self.features

    def refine(self, probs_refiner: np.ndarray, mask: np.ndarray) -> None:
        """Blend the Refiner's probabilities in where IAM's mask is set (paper eq. 4).

        Args:
            probs_refiner: float32 (C, h, w) Refiner output at the probability resolution.
            mask: float32 (h, w) IAM mask in [0, 1].
        """
        from evs_ros.pipeline.iam import blend_probs
        probs_warped = self.aligned_probs()
        probs_refiner = np.asarray(probs_refiner, dtype=np.float32)
        if probs_refiner.shape != probs_warped.shape:
            raise ValueError(f'Refiner returned probs of shape {probs_refiner.shape}, expected '
                             f'{probs_warped.shape} (the shape of probs_warped)')
        touched_low = np.asarray(mask) > 0
        if not touched_low.any():
            return  # eq. 4 with M = 0 everywhere: the warped probabilities stay
        self.probs = blend_probs(probs_refiner, probs_warped, mask)
        # Only touched pixels can change: take the argmax there only (it dominates the cost).
        labels_low = self.labels_low.copy()
        labels_low[touched_low] = np.argmax(self.probs[:, touched_low], axis=0)
        self.labels_low = labels_low
        self.anchor_labels_low, self.anchor_chain = labels_low, None  # the networks set it
        touched = upsample_labels(touched_low.astype(np.uint8), self.labels.shape)
        refined = upsample_labels(labels_low, self.labels.shape)
        self.labels = cv2.copyTo(refined, touched, self.labels.copy())


def upsample_labels(labels_low: np.ndarray, camera_hw: Tuple[int, int]) -> np.ndarray:
    """Return uint8 (H, W) labels: nearest-neighbour upsampling of uint8 (h, w) labels."""
    height, width = camera_hw
    if labels_low.shape == (height, width):
        return labels_low.copy()
    return cv2.resize(labels_low, (width, height), interpolation=cv2.INTER_NEAREST)


def argmax_labels(probs: np.ndarray) -> np.ndarray:
    """Return uint8 (h, w) argmax over C of float32 (C, h, w) probabilities."""
    return np.argmax(probs, axis=0).astype(np.uint8)


def consecutive_flows(estimator, gray_cur: np.ndarray, gray_prev: np.ndarray,
                      iam_config: IamConfig):
    """Return DIS between two consecutive frames: (flow_cur_to_prev, flow_prev_to_cur or None).

    Both are :class:`~evs_ros.flow.field.FlowField` objects. The backward flow is computed only
    for ``iam.backward_flow == 'dis'`` (exact IAM, about twice the flow cost). Estimators with
    only ``calc`` (camera-resolution arrays) work too.
    """
    flow_cur_to_prev = _flow_field(estimator, gray_cur, gray_prev)
    flow_prev_to_cur = None
    if iam_config.backward_flow == 'dis':
        flow_prev_to_cur = _flow_field(estimator, gray_prev, gray_cur)
    return flow_cur_to_prev, flow_prev_to_cur


def _flow_field(estimator, gray_cur, gray_prev) -> FlowField:
    calc_field = getattr(estimator, 'calc_field', None)
    if calc_field is not None:
        return calc_field(gray_cur, gray_prev)
    return FlowField.of(estimator.calc(gray_cur, gray_prev))


def _bounded(steps: Tuple[np.ndarray, ...]) -> Tuple[np.ndarray, ...]:
    """Compose the step flows into one once there are more than :data:`MAX_PROBS_STEPS`.

    The same left fold :meth:`PropagationState.aligned_probs` does, so the result is the same.
    """
    return steps if len(steps) <= MAX_PROBS_STEPS else (_fold(steps),)


def _fold(steps: Tuple[np.ndarray, ...]) -> np.ndarray:
    pending = steps[0]
    for step in steps[1:]:
        pending = compose_flows(pending, step)
    return pending


def _compose_pending(pending_flow: Optional[np.ndarray], flow_step: np.ndarray) -> np.ndarray:
    """Extend a pending flow (current -> aligned frame) by one more step, same resolution."""
    return flow_step if pending_flow is None else compose_flows(pending_flow, flow_step)


def _run_iam(labels_low_prev, flow_low, iam_config, flow_prev_to_cur):
    from evs_ros.pipeline.iam import compute_iam
    backward = None
    if flow_prev_to_cur is not None:
        backward = FlowField.of(flow_prev_to_cur).at(flow_low.shape[:2])
    elif iam_config.backward_flow == 'dis':
        # A flow composed over several frames (keyframe catch-up) has no exact backward flow:
        # use the negated-flow approximation there rather than failing the frame.
        iam_config = replace(iam_config, backward_flow='negated')
    return compute_iam(labels_low_prev, flow_low, iam_config, flow_prev_to_cur=backward)
