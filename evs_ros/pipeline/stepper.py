"""The per-frame EVS algorithm for one stream, written once (paper §3, Fig. 2; design §3-4).

:class:`FrameStepper` owns what a stream remembers between frames (the keyframe scheduler, the
previous gray frame, the propagation state, keyframe requests in flight) and turns one camera
frame into one :class:`~evs_ros.pipeline.results.FrameResult`. The synchronous
:class:`~evs_ros.pipeline.pipeline.EvsPipeline` drives it with an
:class:`~evs_ros.pipeline.inference.InlineInference` (the network runs in the caller's thread);
the runtime's :class:`~evs_ros.pipeline.runtime.EvsStream` drives it from its flow-worker thread
with the shared :class:`~evs_ros.pipeline.inference.InferenceWorker`. With an inline inference
both give exactly the same labels; with the asynchronous worker a keyframe result that arrives
after later frames is carried forward to the current frame (:mod:`evs_ros.pipeline.catchup`).

Per frame:

1. A frame whose resolution differs from the previous one resets the state (flow between
   different sizes is meaningless); the first frame and the first after a reset are keyframes.
2. The scheduler decides whether the frame is a keyframe; a keyframe request goes to the
   inference (downscaled by D).
3. DIS flow to the previous frame is computed when something needs it: W on, a previous gray
   frame exists, and the frame's own keyframe result is not already there (in flight, failed, or
   not a keyframe). W off computes no flow at all: the last labels are held.
4. The newest arrived keyframe result is adopted, carried forward through the flows computed
   meanwhile; otherwise the current state is propagated (eq. 1-2) and IAM runs (eq. 3).
5. With R on and a Refiner, IAM's mask selects where the Refiner's probabilities replace the
   warped ones (eq. 4).

Nothing waits for the network except the very first keyframe (there is nothing to propagate yet)
and a refinement (the frame's labels depend on it). Failed keyframe requests are counted
(``errors``) and make the next frame a keyframe; the stream keeps propagating the old state.
"""

import logging
import math
import time
from dataclasses import replace
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint, effective_flow
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.pipeline.catchup import PendingKeyframe, extend_all
from evs_ros.pipeline.results import FrameInfo, FrameResult
from evs_ros.pipeline.scheduler import KeyframeScheduler
from evs_ros.pipeline.state import (
    aligned_features, aligned_probs, apply_refinement, consecutive_flows, current_probs,
    propagate, state_from_prediction,
)
from evs_ros.pipeline.stats import StreamStats

LOGGER = logging.getLogger('evs_ros')
POLL_S = 0.05


def downscale_image(image_bgr: np.ndarray, downscale: float) -> np.ndarray:
    """Return the uint8 (round(H*D), round(W*D), 3) network input (INTER_AREA); D=1: as is."""
    if downscale >= 1.0:
        return image_bgr
    height, width = image_bgr.shape[:2]
    size_wh = (max(1, round(width * downscale)), max(1, round(height * downscale)))
    return cv2.resize(image_bgr, size_wh, interpolation=cv2.INTER_AREA)


class KeyframeWork:
    """The network on one keyframe, run by the inference worker: :meth:`network_input` is the
    frame downscaled by D (computed there, off the flow worker); :meth:`finish` turns the
    prediction into the keyframe's state. The worker may run several keyframes of one
    ``input_hw`` in one batch (``predict_batch``) and call ``finish`` on each."""

    def __init__(self, model, frame_bgr: np.ndarray, downscale: float):
        self.model, self.frame_bgr, self.downscale = model, frame_bgr, downscale
        height, width = frame_bgr.shape[:2]
        self.input_hw = ((height, width) if downscale >= 1.0 else
                         (max(1, round(height * downscale)), max(1, round(width * downscale))))

    def network_input(self) -> np.ndarray:
        """uint8 (h, w, 3): the frame at ``input_hw``."""
        return downscale_image(self.frame_bgr, self.downscale)

    def __call__(self):
        return self.finish(self.model.predict(self.network_input()))

    def finish(self, prediction):
        """The keyframe's state at camera resolution from the network's prediction."""
        return state_from_prediction(prediction, self.frame_bgr.shape[:2])


class FrameStepper:
    """Scheduler, previous frame, propagation state and frame info of one stream.

    Args:
        config: operating point, flow and IAM settings (the runtime settings are not used here).
        inference: an :class:`~evs_ros.pipeline.inference.InferenceWorker` (asynchronous) or
            :class:`~evs_ros.pipeline.inference.InlineInference` (synchronous); the stepper
            registers one stream slot with it.
        flow_estimator: ``calc(gray_cur, gray_prev) -> flow_cur_to_prev``; default DIS from
            ``config.flow``. DIS objects must not be shared between threads.
        name: stream name for logs.
        stats: counters shared with the caller (``errors``, ``keyframes`` are counted here).
        is_closed: returns True once the owner is closing; waits for the network then give up.
    """

    def __init__(self, config: EvsConfig, inference, flow_estimator=None, name: str = 'camera',
                 stats: Optional[StreamStats] = None,
                 is_closed: Callable[[], bool] = lambda: False):
        self.name = name
        self._config = config
        self._inference = inference
        self._key = inference.register(name)
        self._flow = flow_estimator or FlowEstimator(effective_flow(config))
        self._scheduler = KeyframeScheduler(config.operating_point)
        self._stats = stats if stats is not None else StreamStats()
        self._is_closed = is_closed
        self._seq = 0
        self.reset()

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next frame."""
        return self._scheduler.operating_point

    @property
    def config(self) -> EvsConfig:
        """The settings of the next frame (operating point: see :attr:`operating_point`)."""
        return self._config

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Use ``op`` from the next frame on (the count since the keyframe carries over)."""
        self.set_config(replace(self._config, operating_point=op))

    def set_config(self, config: EvsConfig) -> None:
        """Use ``config``'s operating point, flow and IAM settings from the next frame on."""
        flow = effective_flow(config)
        if flow != effective_flow(self._config):
            self._flow = FlowEstimator(flow)
        self._config = config
        self._scheduler.set_operating_point(config.operating_point)

    def announce_operating_point(self, op: OperatingPoint) -> None:
        """Make ``op`` decide the next keyframe (safe from another thread; the rest of a new
        config follows through :meth:`set_config` in the stepping thread)."""
        self._scheduler.set_operating_point(op)

    def flow_config(self):
        """The flow settings of the next frame (the operating point's own scale if it has one)."""
        return effective_flow(self._config, self._scheduler.operating_point)

    def reset(self) -> None:
        """Forget the state: the next frame is a keyframe."""
        self._state = None
        self._gray_prev: Optional[np.ndarray] = None
        self._flow_backward: Optional[np.ndarray] = None
        self._camera_hw: Optional[Tuple[int, int]] = None
        self._pending: List[PendingKeyframe] = []
        self._last_fraction = math.nan
        self._late_adoption = False
        self._scheduler.reset()

    def close(self) -> None:
        """Give the stream slot back to the inference (its queued requests are dropped)."""
        self._inference.unregister(self._key)

    def step(self, image_bgr: np.ndarray, stamp_ns: int = 0, prefetched=None) -> FrameResult:
        """Segment one uint8 (H, W, 3) BGR frame; labels come at camera resolution.

        ``prefetched``: a :class:`~evs_ros.pipeline.flow_prefetch.PrefetchedFlow` of this frame
        and the previous one, computed on another core (or None). ``FrameInfo.latency_ms`` and
        ``dropped_frames`` are left to the caller.
        """
        start = time.perf_counter()
        camera_hw = image_bgr.shape[:2]
        self._reset_on_resolution_change(camera_hw)
        seq, self._seq = self._seq, self._seq + 1
        self._collect_failures()
        op = self._scheduler.operating_point
        keyframe = self._scheduler.decide(self._last_fraction)
        timings = {}
        if keyframe and self._config.runtime.wait_for_keyframes:
            self._wait_pending(timings)
        request = self._request_keyframe(image_bgr, seq, op) if keyframe else None
        flow = self._next_flow(image_bgr, op, seq, request, timings, prefetched)
        extend_all(self._pending, flow, timings)
        if request is not None:
            self._pending.append(request)
        iam = self._update_state(flow, seq, timings)
        refined = self._refine(image_bgr, seq, op, iam, timings)
        result = self._result(iam, refined, camera_hw)
        self._fill_info(result.info, seq, stamp_ns, op, keyframe, timings, start)
        return result

    def _reset_on_resolution_change(self, camera_hw) -> None:
        if self._camera_hw is not None and camera_hw != self._camera_hw:
            LOGGER.info('%s: resolution changed to %s: state reset', self.name, camera_hw)
            self.reset()
        self._camera_hw = camera_hw

    def _request_keyframe(self, image_bgr, seq, op) -> PendingKeyframe:
        work = KeyframeWork(self._inference.model, image_bgr, op.downscale)
        staleness = self._state.age + 1 if self._state is not None else float('inf')
        try:
            request = self._inference.submit(self._key, 'keyframe', seq, work, staleness)
        except Exception:  # an inline network failed: the next frame tries again
            self._scheduler.force_keyframe()
            raise
        return PendingKeyframe(request, seq)

    def _next_flow(self, image_bgr, op, seq, request, timings, prefetched):
        """FlowField current -> previous frame, or None (W off, no previous gray, or not
        needed)."""
        gray_cur = to_gray(image_bgr) if op.warp else None
        gray_prev, self._gray_prev = self._gray_prev, gray_cur
        self._flow_backward = None
        if gray_cur is None or gray_prev is None or not self._flow_needed(seq, request):
            return None
        computed = None if prefetched is None else prefetched.result(effective_flow(
            self._config, op), self._config.iam)
        if computed is not None:
            flow, self._flow_backward, timings['flow_ms'] = computed
            return flow
        flow, self._flow_backward = consecutive_flows(self._flow, gray_cur, gray_prev,
                                                      self._config.iam, timings)
        return flow

    def _flow_needed(self, seq: int, request: Optional[PendingKeyframe]) -> bool:
        """False only when this frame's own keyframe result is already there and nothing else
        is in flight (always the case with an inline inference): it replaces the state."""
        pendings = self._pending + ([request] if request is not None else [])
        if any(not pending.request.done for pending in pendings):
            return True
        usable = [pending for pending in pendings if pending.request.ok]
        return not usable or usable[-1].frame_seq != seq

    def _collect_failures(self) -> None:
        """Drop failed keyframe requests; the frame about to be decided becomes a keyframe."""
        failed = [p for p in self._pending if p.request.done and p.request.error is not None]
        if failed:
            self._pending = [p for p in self._pending if p not in failed]
            self._stats.count('errors', len(failed))
            self._scheduler.force_keyframe()

    def _update_state(self, flow, seq, timings):
        """Adopt an arrived keyframe or propagate the current state; returns IamResult or None."""
        iam, caught_up = self._catch_up(seq, timings)
        if self._state is None:
            iam, caught_up = self._wait_first_keyframe(seq, timings)
        elif not caught_up:
            iam = self._propagate_current(flow, timings)
        return iam

    def _catch_up(self, seq, timings):
        """Adopt the newest arrived keyframe result, carried forward to frame ``seq``.

        Returns (IamResult or None, whether a result was adopted).
        """
        arrived = [p for p in self._pending if p.request.done]
        if not arrived:
            return None, False
        self._pending = [p for p in self._pending if not p.request.done]
        usable = None
        for pending in arrived:
            if pending.request.error is not None:
                self._stats.count('errors')
                self._scheduler.force_keyframe()
            elif pending.request.ok:
                usable = pending
        if usable is None:
            return None, False
        self._stats.count('keyframes')
        timings['inference_ms'] = usable.request.elapsed_ms
        self._state, iam = usable.carry_forward(seq, self._config.iam, timings,
                                                self._config.flow.labels_from)
        # IAM over a flow composed across several frames is no per-frame inconsistency: it
        # must not add to the adaptive policy's sum.
        self._late_adoption = iam is not None
        return iam, True

    def _wait_first_keyframe(self, seq, timings):
        if self._pending and not self._wait(self._pending[-1].request):
            return None, False
        return self._catch_up(seq, timings)

    def _wait_pending(self, timings) -> None:
        """``runtime.wait_for_keyframes``: let the keyframes in flight finish first, so every
        scheduled keyframe runs (none superseded); the wait is ``FrameInfo.wait_ms``."""
        start = time.perf_counter()
        for pending in list(self._pending):
            if not self._wait(pending.request):
                return
        if self._pending:
            timings['wait_ms'] = (time.perf_counter() - start) * 1000.0

    def _wait(self, request) -> bool:
        """Block until ``request`` is done; False if the owner closes first."""
        while not request.wait(POLL_S):
            if self._is_closed():
                return False
        return True

    def _propagate_current(self, flow, timings):
        if flow is None:
            self._state.age += 1  # W off (or W just switched on): hold the last labels
            return None
        self._state, iam = propagate(self._state, flow, self._config.iam,
                                     flow_prev_to_cur=self._flow_backward, timings=timings,
                                     labels_from=self._config.flow.labels_from)
        return iam

    def _refine(self, image_bgr, seq, op, iam, timings) -> bool:
        """IAM + Refiner on a propagated frame (eq. 4); True if the probabilities changed."""
        refiner = self._inference.refiner
        if self._state is None or iam is None or not op.refine or refiner is None:
            return False
        features = aligned_features(self._state, timings)
        probs_warped = aligned_probs(self._state, timings)

        def work(image=image_bgr, downscale=op.downscale):
            return refiner.refine(downscale_image(image, downscale), probs_warped, features)

        request = self._inference.submit(self._key, 'refine', seq, work)
        if not self._wait(request):
            return False
        if not request.ok:
            self._stats.count('errors')
            return False
        start = time.perf_counter()
        apply_refinement(self._state, request.result, iam.mask)
        timings['refine_ms'] = request.elapsed_ms + (time.perf_counter() - start) * 1000.0
        return True

    def _result(self, iam, refined, camera_hw) -> FrameResult:
        if self._state is None:  # the very first keyframe failed: nothing known yet
            info = FrameInfo(frames_since_keyframe=-1)
            return FrameResult(info, np.full(camera_hw, 255, np.uint8))
        fraction = math.nan if iam is None else float(iam.inconsistent_fraction)
        self._last_fraction = math.nan if self._late_adoption else fraction
        self._late_adoption = False
        info = FrameInfo(frames_since_keyframe=self._state.age, refined=refined,
                         inconsistent_fraction=fraction)
        return FrameResult(info, self._state.labels, current_probs(self._state),
                           None if iam is None else iam.mask)

    @staticmethod
    def _fill_info(info, seq, stamp_ns, op, keyframe, timings, start) -> None:
        info.seq = seq
        info.stamp_ns = int(stamp_ns)
        info.keyframe = keyframe
        info.operating_point = op.name
        for key, value in timings.items():
            setattr(info, key, value)
        info.total_ms = (time.perf_counter() - start) * 1000.0
