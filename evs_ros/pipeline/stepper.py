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
The stepper decides keyframes, computes flow and talks to the network; the labels' transitions
and the keyframes in flight belong to its :class:`~evs_ros.pipeline.propagation.Propagation`.

Per frame:

1. A frame whose resolution differs from the previous one resets the state (flow between
   different sizes is meaningless); the first frame and the first after a reset are keyframes.
2. The scheduler decides whether the frame is a keyframe; a keyframe request goes to the
   inference, the frame resized to the network's scale times D
   (:mod:`evs_ros.pipeline.network_input`).
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
from typing import Callable, Optional, Tuple

import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint, effective_flow
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.pipeline.catchup import PendingKeyframe
from evs_ros.pipeline.network_input import (advise_scale, input_short_side, network_scale,
                                            resize_for_network, scaled_hw)
from evs_ros.pipeline.propagation import Propagation
from evs_ros.pipeline.results import FrameInfo, FrameResult, StageTimer
from evs_ros.pipeline.scheduler import KeyframeScheduler
from evs_ros.pipeline.state import PropagationState, consecutive_flows
from evs_ros.pipeline.stats import StreamStats

LOGGER = logging.getLogger('evs_ros')
POLL_S = 0.05


class KeyframeWork:
    """The network on one keyframe, run by the inference worker.

    :meth:`network_input` is the frame at the network's scale times D (computed there, off the
    flow worker; see :func:`~evs_ros.pipeline.network_input.network_scale`); :meth:`finish` turns
    the prediction into the keyframe's state (labels upsampled with ``upsample``). The worker may
    run several keyframes of one ``input_hw`` in one batch (``predict_batch``) and call
    ``finish`` on each.
    """

    def __init__(self, model, frame_bgr: np.ndarray, downscale: float,
                 upsample: str = 'nearest'):
        self.model, self.frame_bgr, self.downscale = model, frame_bgr, downscale
        self.upsample = upsample
        self.scale = network_scale(frame_bgr.shape[:2], downscale, input_short_side(model))
        self.input_hw = scaled_hw(frame_bgr.shape[:2], self.scale)

    def network_input(self) -> np.ndarray:
        """Return the frame at ``input_hw``: uint8 (h, w, 3)."""
        return resize_for_network(self.frame_bgr, self.scale)

    def __call__(self):
        return self.finish(self.model.predict(self.network_input()))

    def finish(self, prediction):
        """Return the keyframe's state at camera resolution from the network's prediction."""
        return PropagationState.from_prediction(prediction, self.frame_bgr.shape[:2],
                                                self.upsample)


class FrameStepper:
    """Scheduler, previous frame, propagation and frame info of one stream.

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

    Not thread-safe: one thread steps, and settings change between frames (:meth:`set_config`).
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
        self._propagation = Propagation(self._wait)
        self._propagation.configure(config.iam, config.flow.labels_from)
        self._seq = 0
        self.reset()

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next frame."""
        return self._scheduler.operating_point

    @property
    def config(self) -> EvsConfig:
        """The settings of the next frame."""
        return self._config

    @property
    def state(self) -> Optional[PropagationState]:
        """What the stream knows about its last frame (None before the first keyframe)."""
        return self._propagation.state

    def set_config(self, config: EvsConfig) -> None:
        """Use ``config``'s operating point, flow and IAM settings from the next frame on.

        The count of frames since the keyframe carries over to the new operating point.
        """
        flow = effective_flow(config)
        if flow != effective_flow(self._config):
            self._flow = FlowEstimator(flow)
        self._config = config
        self._scheduler.set_operating_point(config.operating_point)
        self._propagation.configure(config.iam, config.flow.labels_from)

    def flow_config(self):
        """Return the flow settings of the next frame (the operating point's own scale if any)."""
        return effective_flow(self._config)

    def reset(self) -> None:
        """Forget the state: the next frame is a keyframe."""
        self._propagation.reset()
        self._gray_prev: Optional[np.ndarray] = None
        self._camera_hw: Optional[Tuple[int, int]] = None
        self._last_fraction = math.nan
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
        timer = StageTimer()
        camera_hw = image_bgr.shape[:2]
        self._reset_on_resolution_change(camera_hw)
        seq, self._seq = self._seq, self._seq + 1
        self._count_failures(self._propagation.drop_failed())
        op = self._scheduler.operating_point
        keyframe = self._scheduler.decide(self._last_fraction)
        if keyframe and self._config.runtime.wait_for_keyframes and self._propagation.pending:
            with timer.stage('wait_ms'):
                self._propagation.wait_in_flight()
        request = self._request_keyframe(image_bgr, seq, op) if keyframe else None
        flow, flow_backward = self._next_flow(image_bgr, op, seq, request, timer, prefetched)
        advance = self._propagation.advance(seq, flow, flow_backward, request, timer)
        self._count_failures(advance.failed)
        if advance.adopted:
            self._stats.count('keyframes')
        refined = self._refine(image_bgr, seq, op, advance.iam, timer)
        # IAM over a flow composed across several frames (a late keyframe carried forward) is no
        # per-frame inconsistency: it must not add to the adaptive policy's sum.
        result = self._result(advance.iam, refined, camera_hw, late=advance.adopted)
        self._fill_info(result.info, seq, stamp_ns, op, keyframe)
        timer.fill(result.info)
        return result

    def _reset_on_resolution_change(self, camera_hw) -> None:
        if self._camera_hw is not None and camera_hw != self._camera_hw:
            LOGGER.info('%s: resolution changed to %s: state reset', self.name, camera_hw)
            self.reset()
        self._camera_hw = camera_hw

    def _count_failures(self, failed: int) -> None:
        """Count failed keyframe requests; the next frame to be decided becomes a keyframe."""
        if failed:
            self._stats.count('errors', failed)
            self._scheduler.force_keyframe()

    def _request_keyframe(self, image_bgr, seq, op) -> PendingKeyframe:
        model = self._inference.model
        advise_scale(model, image_bgr.shape[:2], op.downscale, self.name)
        work = KeyframeWork(model, image_bgr, op.downscale, self._config.model.upsample)
        try:
            request = self._inference.submit(self._key, 'keyframe', seq, work,
                                             self._propagation.staleness)
        except Exception:  # an inline network failed: the next frame tries again
            self._scheduler.force_keyframe()
            raise
        return PendingKeyframe(request, seq)

    def _next_flow(self, image_bgr, op, seq, request, timer, prefetched):
        """Return (flow current -> previous, exact backward flow or None) as FlowFields.

        (None, None) when the frame needs no flow: W off, no previous gray frame, or its own
        keyframe result replaces the state.
        """
        gray_cur = to_gray(image_bgr) if op.warp else None
        gray_prev, self._gray_prev = self._gray_prev, gray_cur
        if (gray_cur is None or gray_prev is None
                or not self._propagation.flow_needed(seq, request)):
            return None, None
        computed = None if prefetched is None else prefetched.result(
            self.flow_config(), self._config.iam)
        if computed is not None:
            flow, flow_backward, flow_ms = computed
            timer.add('flow_ms', flow_ms)
            return flow, flow_backward
        with timer.stage('flow_ms'):
            return consecutive_flows(self._flow, gray_cur, gray_prev, self._config.iam)

    def _wait(self, request) -> bool:
        """Block until ``request`` is done; False if the owner closes first."""
        while not request.wait(POLL_S):
            if self._is_closed():
                return False
        return True

    def _refine(self, image_bgr, seq, op, iam, timer) -> bool:
        """IAM + Refiner on a propagated frame (eq. 4); True if the probabilities changed."""
        refiner = self._inference.refiner
        state = self._propagation.state
        if state is None or iam is None or not op.refine or refiner is None:
            return False
        features = state.aligned_features(timer)
        probs_warped = state.aligned_probs(timer)

        scale = network_scale(image_bgr.shape[:2], op.downscale,
                              input_short_side(self._inference.model))

        def work(image=image_bgr):
            return refiner.refine(resize_for_network(image, scale), probs_warped, features)

        request = self._inference.submit(self._key, 'refine', seq, work)
        if not self._wait(request):
            return False
        if not request.ok:
            self._stats.count('errors')
            return False
        timer.add('refine_ms', request.elapsed_ms)
        with timer.stage('refine_ms'):
            self._propagation.refine(request.result, iam.mask)
        return True

    def _result(self, iam, refined: bool, camera_hw, late: bool) -> FrameResult:
        state = self._propagation.state
        if state is None:  # the very first keyframe failed: nothing known yet
            info = FrameInfo(frames_since_keyframe=-1)
            return FrameResult(info, np.full(camera_hw, 255, np.uint8))
        fraction = math.nan if iam is None else float(iam.inconsistent_fraction)
        self._last_fraction = math.nan if late and iam is not None else fraction
        info = FrameInfo(frames_since_keyframe=state.age, refined=refined,
                         inconsistent_fraction=fraction)
        return FrameResult(info, state.labels, state.current_probs,
                           None if iam is None else iam.mask)

    @staticmethod
    def _fill_info(info, seq, stamp_ns, op, keyframe) -> None:
        info.seq = seq
        info.stamp_ns = int(stamp_ns)
        info.keyframe = keyframe
        info.operating_point = op.name
