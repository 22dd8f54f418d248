"""Per-stream propagation state and its update steps (paper §3.3-3.5, eq. 1-4).

The steps of :class:`~evs_ros.pipeline.stepper.FrameStepper`, the one per-frame algorithm of the
synchronous pipeline and the runtime; keyframe catch-up (:mod:`evs_ros.pipeline.catchup`) uses
:func:`propagate` with flows composed over several frames.

Labels at camera resolution come from the network's probabilities by an argmax at the probability
resolution followed by a nearest-neighbour upsampling: upsampling the probabilities first would
make keyframes and refined frames cost more than DIS itself (docs/benchmarks.md, "Design
measurements"). ``model.upsample: bilinear`` takes keyframe labels from the bilinearly upsampled
probabilities instead, computed only where the two can differ
(:func:`~evs_ros.pipeline.network_input.bilinear_argmax`; section 14 measures it). On refined
frames only the pixels the IAM mask touches take the refined labels; the others keep the
full-resolution warped labels (eq. 4 restricted to where it matters).
"""

import time
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import cv2
import numpy as np

from evs_ros.config import IamConfig
from evs_ros.flow import FlowField, compose_flows, warp_dense, warp_labels
from evs_ros.models.base import Prediction
from evs_ros.pipeline.network_input import bilinear_argmax


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


def upsample_labels(labels_low: np.ndarray, camera_hw: Tuple[int, int]) -> np.ndarray:
    """Return uint8 (H, W) labels: nearest-neighbour upsampling of uint8 (h, w) labels."""
    height, width = camera_hw
    if labels_low.shape == (height, width):
        return labels_low.copy()
    return cv2.resize(labels_low, (width, height), interpolation=cv2.INTER_NEAREST)


def argmax_labels(probs: np.ndarray) -> np.ndarray:
    """Return uint8 (h, w) argmax over C of float32 (C, h, w) probabilities."""
    return np.argmax(probs, axis=0).astype(np.uint8)


def state_from_prediction(prediction: Prediction, camera_hw: Tuple[int, int],
                          upsample: str = 'nearest') -> PropagationState:
    """Build the keyframe state from the network's output (any probability resolution); the
    camera-size labels by ``upsample`` (``nearest`` or ``bilinear``, ``config.model.upsample``)."""
    probs = np.asarray(prediction.probs, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f'Prediction.probs must be float32 (C, h, w), got shape {probs.shape}')
    labels_low = argmax_labels(probs)
    labels = (bilinear_argmax(probs, camera_hw, labels_low) if upsample == 'bilinear' else
              upsample_labels(labels_low, camera_hw))
    features = prediction.features
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
    return PropagationState(labels=labels, labels_low=labels_low, probs=probs, features=features,
                            anchor_labels_low=labels_low)


def consecutive_flows(estimator, gray_cur: np.ndarray, gray_prev: np.ndarray,
                      iam_config: IamConfig, timings: Optional[dict] = None):
    """DIS between two consecutive frames: (flow_cur_to_prev, flow_prev_to_cur or None) as
    :class:`~evs_ros.flow.field.FlowField` objects.

    The backward flow is computed only for ``iam.backward_flow == 'dis'`` (exact IAM, about
    twice the flow cost); ``flow_ms`` in ``timings`` covers both. Estimators with only ``calc``
    (camera-resolution arrays) work too.
    """
    start = time.perf_counter()
    flow_cur_to_prev = _flow_field(estimator, gray_cur, gray_prev)
    flow_prev_to_cur = None
    if iam_config.backward_flow == 'dis':
        flow_prev_to_cur = _flow_field(estimator, gray_prev, gray_cur)
    if timings is not None:
        timings['flow_ms'] = (time.perf_counter() - start) * 1000.0
    return flow_cur_to_prev, flow_prev_to_cur


def _flow_field(estimator, gray_cur, gray_prev) -> FlowField:
    calc_field = getattr(estimator, 'calc_field', None)
    if calc_field is not None:
        return calc_field(gray_cur, gray_prev)
    return FlowField.of(estimator.calc(gray_cur, gray_prev))


def propagate(state: PropagationState, flow_cur_to_prev, iam_config: IamConfig,
              steps: int = 1, flow_prev_to_cur=None, timings: Optional[dict] = None,
              labels_from: str = 'previous'):
    """Warp labels to the current frame (eq. 1-2), then run IAM (eq. 3).

    Probabilities and features are not warped here: the probabilities' step flows are kept and
    the features' pending flow is composed; each is warped once, when a refinement needs it
    (:func:`aligned_probs`, :func:`aligned_features`).

    Args:
        state: the state of the frame the flow points to (left unchanged).
        flow_cur_to_prev: :class:`~evs_ros.flow.field.FlowField` (or float32 (H, W, 2) at camera
            resolution) from the current frame to the state's frame (one frame back, or several
            frames composed).
        iam_config: IAM settings; IAM runs at the probability resolution.
        steps: frames between the two (added to ``age``).
        flow_prev_to_cur: the exact backward flow for IAM (same forms), or None.
        timings: optional dict; ``warp_ms`` and ``iam_ms`` are added to it.
        labels_from: ``'previous'``: the state's camera-resolution labels warped with the flow
            at camera resolution (paper eq. 1); ``'keyframe'``: the anchor's low-resolution
            labels warped once through the composed chain, then upsampled (``flow.labels_from``).

    Returns:
        (new state, IamResult).
    """
    start = time.perf_counter()
    field = FlowField.of(flow_cur_to_prev)
    flow_low = field.at(state.probs.shape[-2:])
    anchor_chain = None
    if labels_from == 'keyframe':
        anchor_chain = _compose_pending(state.anchor_chain, flow_low)
        labels_low = warp_labels(state.anchor_labels_low, anchor_chain)
        labels = upsample_labels(labels_low, state.labels.shape)
    else:
        labels = warp_labels(state.labels, field.full)
    probs_steps = state.probs_steps + (flow_low,)
    features_flow = _defer_feature_warp(state, field)
    _add_ms(timings, 'warp_ms', start)
    iam = _run_iam(state.labels_low, flow_low, iam_config, flow_prev_to_cur, timings)
    anchor_low = state.anchor_labels_low
    if labels_from != 'keyframe':  # keep the anchor current: a switch of mode starts from here
        labels_low = anchor_low = iam.labels_warped
    new_state = replace(state, labels=labels, labels_low=labels_low,
                        probs_steps=_bounded(probs_steps), features_flow=features_flow,
                        anchor_labels_low=anchor_low, anchor_chain=anchor_chain,
                        age=state.age + steps)
    return new_state, iam


MAX_PROBS_STEPS = 8
"""Step flows kept for the probabilities before they are composed into one (bounded memory)."""


def _bounded(steps: Tuple[np.ndarray, ...]) -> Tuple[np.ndarray, ...]:
    """Compose the step flows into one once there are more than :data:`MAX_PROBS_STEPS` (the same
    left fold :func:`aligned_probs` does, so the result is the same)."""
    return steps if len(steps) <= MAX_PROBS_STEPS else (_fold(steps),)


def _fold(steps: Tuple[np.ndarray, ...]) -> np.ndarray:
    pending = steps[0]
    for step in steps[1:]:
        pending = compose_flows(pending, step)
    return pending


def _compose_pending(pending_flow: Optional[np.ndarray], flow_step: np.ndarray) -> np.ndarray:
    """Extend a pending flow (current -> aligned frame) by one more step, same resolution."""
    return flow_step if pending_flow is None else compose_flows(pending_flow, flow_step)


def _run_iam(labels_low_prev, flow_low, iam_config, flow_prev_to_cur, timings):
    from evs_ros.pipeline.iam import compute_iam
    start = time.perf_counter()
    backward = None
    if flow_prev_to_cur is not None:
        backward = FlowField.of(flow_prev_to_cur).at(flow_low.shape[:2])
    elif iam_config.backward_flow == 'dis':
        # A flow composed over several frames (keyframe catch-up) has no exact backward flow:
        # use the negated-flow approximation there rather than failing the frame.
        iam_config = replace(iam_config, backward_flow='negated')
    iam = compute_iam(labels_low_prev, flow_low, iam_config, flow_prev_to_cur=backward)
    _add_ms(timings, 'iam_ms', start)
    return iam


def _defer_feature_warp(state: PropagationState, field: FlowField):
    """Compose the pending feature flow with one more step, at the feature resolution."""
    if state.features is None:
        return None
    return _compose_pending(state.features_flow, field.at(state.features.shape[-2:]))


def aligned_probs(state: PropagationState, timings: Optional[dict] = None) -> np.ndarray:
    """Return float32 (C, h, w) probabilities aligned with the current frame (P_warped).

    Composes the pending step flows in order and warps once; caches the result in ``state``.
    """
    if state.probs_steps:
        start = time.perf_counter()
        state.probs = warp_dense(state.probs, _fold(state.probs_steps))
        state.probs_steps = ()
        _add_ms(timings, 'warp_ms', start)
    return state.probs


def current_probs(state: PropagationState) -> Optional[np.ndarray]:
    """The probabilities if they are aligned with the current frame without extra work, else
    None (propagated frames without refinement; :func:`aligned_probs` computes them)."""
    return None if state.probs_steps else state.probs


def aligned_features(state: PropagationState, timings: Optional[dict] = None):
    """Return float32 (Cf, hf, wf) features aligned with the current frame (or None).

    Warps them once with the composed pending flow and caches the result in ``state``.
    """
    if state.features is None or state.features_flow is None:
        return state.features
    start = time.perf_counter()
    state.features = warp_dense(state.features, state.features_flow)
    state.features_flow = None
    _add_ms(timings, 'warp_ms', start)
    return state.features


def apply_refinement(state: PropagationState, probs_refiner: np.ndarray, mask: np.ndarray):
    """Blend the Refiner's probabilities in where IAM's mask is set (paper eq. 4).

    Args:
        probs_refiner: float32 (C, h, w) Refiner output at the probability resolution.
        mask: float32 (h, w) IAM mask in [0, 1].
    """
    from evs_ros.pipeline.iam import blend_probs
    aligned_probs(state)
    probs_refiner = np.asarray(probs_refiner, dtype=np.float32)
    if probs_refiner.shape != state.probs.shape:
        raise ValueError(f'Refiner returned probs of shape {probs_refiner.shape}, expected '
                         f'{state.probs.shape} (the shape of probs_warped)')
    touched_low = np.asarray(mask) > 0
    if not touched_low.any():
        return  # eq. 4 with M = 0 everywhere: the warped probabilities stay
    state.probs = blend_probs(probs_refiner, state.probs, mask)
    # Only touched pixels can change: take the argmax there only (it dominates the cost).
    labels_low = state.labels_low.copy()
    labels_low[touched_low] = np.argmax(state.probs[:, touched_low], axis=0)
    state.labels_low = labels_low
    state.anchor_labels_low, state.anchor_chain = labels_low, None  # the networks set it
    touched = upsample_labels(touched_low.astype(np.uint8), state.labels.shape)
    refined = upsample_labels(labels_low, state.labels.shape)
    state.labels = cv2.copyTo(refined, touched, state.labels.copy())


def _add_ms(timings: Optional[dict], key: str, start: float) -> None:
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + (time.perf_counter() - start) * 1000.0
