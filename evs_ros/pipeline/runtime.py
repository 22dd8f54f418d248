"""The real-time runtime: a flow worker per stream plus one shared inference worker (paper §3.1,
design §4).

:class:`EvsStream` gives every accepted frame a :class:`~evs_ros.pipeline.results.FrameResult` at
flow speed. Its flow-worker thread takes frames in order from a bounded latest-frame buffer,
computes DIS flow against the previous processed frame, propagates the current state (labels,
probabilities, IAM; :mod:`evs_ros.pipeline.state`) and emits. Keyframes are handed to the
:class:`~evs_ros.pipeline.inference.InferenceWorker` asynchronously; when a keyframe result for
frame k arrives while frame n > k is processed, it is carried forward through the flows computed
meanwhile (composed into one flow n -> k as they come, so memory stays bounded) and frame n's
output already uses it ("catch-up"). Until then outputs propagate the old state.

Rules a user can rely on:

* **Bounded input.** ``submit`` never blocks; when the buffer (``runtime.input_queue_size``) is
  full the *oldest* unprocessed frame is dropped and counted (``FrameInfo.dropped_frames`` on the
  next output, ``stats()['dropped']``). Flow is always computed against the previous *processed*
  frame.
* **Monotonic stamps.** A frame whose stamp is not strictly greater than the last accepted stamp is
  rejected (``submit`` returns False, ``stats()['rejected']``, a warning on the 'evs_ros' logger).
  Accepted frames are processed and emitted in order, so output stamps are strictly increasing
  between restarts. A jump back by more than ``STAMP_JUMP_BACK_NS`` (1 s: a looping bag, a reset
  simulation clock) restarts the stream instead (state reset, next frame is a keyframe).
* **What waits.** The very first frame (and the first after a resolution change, which resets the
  state) waits for its own keyframe result: there is nothing to propagate yet. With R on, a
  propagated frame waits for its Refiner result. Nothing else waits for the network.
* **Failures.** An exception in the network or the Refiner is logged (logger 'evs_ros') and counted
  (``stats()['errors']``); the stream goes on propagating the old state (or unrefined probs) and
  asks for a keyframe again on the next frame. If the very first keyframe fails, that frame is
  emitted with all labels 255 (ignore) and ``frames_since_keyframe = -1``.
* **Closing.** ``close()`` stops the flow worker (frames still buffered are discarded). An
  inference already running cannot be interrupted: it finishes in the inference thread, which
  ``EvsRuntime.close`` joins with a timeout.
"""

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Optional

import cv2
import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.pipeline.catchup import PendingKeyframe, extend_all
from evs_ros.pipeline.inference import InferenceWorker
from evs_ros.pipeline.pipeline import downscale_image
from evs_ros.pipeline.results import FrameInfo, FrameResult
from evs_ros.pipeline.scheduler import KeyframeScheduler
from evs_ros.pipeline.stats import StreamStats
from evs_ros.pipeline.state import (
    aligned_features, aligned_probs, apply_refinement, consecutive_flows, current_probs,
    mask_to_camera, propagate, state_from_prediction,
)

LOGGER = logging.getLogger('evs_ros')
_POLL_S = 0.05
STAMP_JUMP_BACK_NS = 1_000_000_000
"""A stamp more than this before the last one restarts the stream (``ros2 bag play --loop``,
a simulation clock reset) instead of being rejected forever; smaller steps back are rejected."""


@dataclass
class _Frame:
    image: np.ndarray
    stamp_ns: int
    meta: Any
    submit_time_s: float
    dropped_before: int = 0
    restart: bool = False


class EvsStream:
    """One camera stream: bounded input, a flow-worker thread, results via ``on_output``.

    Args:
        config: settings (operating point, flow, IAM, runtime).
        inference: the (possibly shared) :class:`InferenceWorker`.
        on_output: called from the flow-worker thread with each FrameResult, in order.
        name: stream name for logs and stats.
        flow_estimator: ``calc(gray_cur, gray_prev) -> flow_cur_to_prev``; default DIS from
            ``config.flow`` (one per stream: DIS objects are not shared between threads).
        clock: monotonic clock in seconds for latencies (injectable for tests).
    """

    def __init__(self, config: EvsConfig, inference: InferenceWorker,
                 on_output: Callable[[FrameResult], None], name: str = 'camera',
                 flow_estimator=None, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self._config = config
        self._inference = inference
        self._on_output = on_output
        self._flow = flow_estimator or FlowEstimator(config.flow)
        self._clock = clock
        self._scheduler = KeyframeScheduler(config.operating_point)
        self._key = inference.register()
        self._cond = threading.Condition()
        self._queue = collections.deque()
        self._closed = False
        self._busy = False
        self._last_stamp: Optional[int] = None
        self._stats = StreamStats()
        self._pending_drops = 0
        self._pending_config: Optional[EvsConfig] = None
        self._seq = 0
        self._reset_state()
        self._thread = threading.Thread(target=self._loop, name=f'evs-flow-{name}', daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(self, image_bgr: np.ndarray, stamp_ns: int, meta: Any = None) -> bool:
        """Queue a uint8 (H, W, 3) BGR frame; returns at once.

        Returns False if the frame is rejected (stream closed, or ``stamp_ns`` not strictly
        greater than the last accepted stamp). Accepting may drop the oldest buffered frame.
        """
        with self._cond:
            if self._closed:
                return False
            restart = False
            if self._last_stamp is not None and stamp_ns <= self._last_stamp:
                if self._last_stamp - stamp_ns <= STAMP_JUMP_BACK_NS:
                    self._reject(stamp_ns)
                    return False
                LOGGER.warning('%s: stamp jumped back by %.1f s (bag loop or sim-time reset): '
                               'restarting the stream', self.name,
                               (self._last_stamp - stamp_ns) / 1e9)
                restart = True
            self._last_stamp = stamp_ns
            self._stats.count('frames_in')
            self._queue.append(_Frame(image_bgr, int(stamp_ns), meta, self._clock(),
                                      restart=restart))
            while len(self._queue) > self._config.runtime.input_queue_size:
                self._queue.popleft()
                self._stats.count('dropped')
                self._pending_drops += 1
            self._stats.raise_to('max_queue', len(self._queue))
            self._cond.notify_all()
        return True

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Use ``op`` from the next processed frame on."""
        self._scheduler.set_operating_point(op)

    def set_config(self, config: EvsConfig) -> None:
        """Use ``config`` (operating point, flow and IAM settings) from the next processed frame
        on. Runtime settings (threads, buffer length) are fixed at construction."""
        with self._cond:
            self._pending_config = config
        self._scheduler.set_operating_point(config.operating_point)

    def _apply_pending_config(self) -> None:
        """In the flow worker: adopt a config given to :meth:`set_config` (a new DIS object when
        the flow settings changed: DIS objects are not shared between threads)."""
        with self._cond:
            config, self._pending_config = self._pending_config, None
        if config is None:
            return
        if config.flow != self._config.flow:
            self._flow = FlowEstimator(config.flow)
        self._config = replace(config, runtime=self._config.runtime)

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next processed frame."""
        return self._scheduler.operating_point

    def queue_length(self) -> int:
        """Frames buffered and not yet processed (never above ``runtime.input_queue_size``)."""
        with self._cond:
            return len(self._queue)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every buffered frame was emitted; False on timeout or when closed."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _POLL_S))
            return True

    def stats(self) -> Dict[str, float]:
        """Counters and ``<stage>_p50`` / ``<stage>_p99`` in ms over the last 1000 samples.

        Counters: frames_in (accepted), frames_out, dropped, rejected, errors, keyframes
        (keyframe results used), max_queue (highest buffer length seen). Stages: flow_ms,
        warp_ms, iam_ms, inference_ms, refine_ms (only frames where the stage ran), latency_ms.
        NaN when no sample yet.
        """
        return self._stats.snapshot()

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop the flow worker (joins it); buffered frames are discarded. True if it stopped."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        self._inference.unregister(self._key)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ flow worker

    def _reject(self, stamp_ns: int) -> None:
        rejected = self._stats.count('rejected')
        if rejected == 1 or rejected % 100 == 0:
            LOGGER.warning('%s: frame rejected: stamp %d ns is not after the last accepted stamp '
                           '%d ns (outputs must stay in order); %d rejected so far', self.name,
                           stamp_ns, self._last_stamp, rejected)

    def _reset_state(self) -> None:
        self._state = None
        self._gray_prev = None
        self._flow_backward = None
        self._camera_hw = None
        self._pending = []
        self._last_fraction = math.nan
        self._scheduler.reset()

    def _loop(self) -> None:
        cv2.setNumThreads(self._config.runtime.flow_threads)
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            try:
                result = self._process(frame)
            except Exception:  # noqa: B902 - a bad frame must not kill the stream
                LOGGER.exception('%s: frame processing failed', self.name)
                self._stats.count('errors')
                result = None
            if result is not None:
                self._emit(result, frame)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _next_frame(self) -> Optional[_Frame]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            frame = self._queue.popleft()
            frame.dropped_before, self._pending_drops = self._pending_drops, 0
            self._busy = True
            return frame

    def _process(self, frame: _Frame) -> FrameResult:
        start = time.perf_counter()
        camera_hw = frame.image.shape[:2]
        self._apply_pending_config()
        if frame.restart:
            self._reset_state()
        elif self._camera_hw is not None and camera_hw != self._camera_hw:
            LOGGER.info('%s: resolution changed to %s: state reset', self.name, camera_hw)
            self._reset_state()
        self._camera_hw = camera_hw
        seq, self._seq = self._seq, self._seq + 1
        self._collect_failures()
        op = self._scheduler.operating_point
        keyframe = self._scheduler.decide(self._last_fraction)
        timings = {}
        flow = self._next_flow(frame.image, op, timings)
        extend_all(self._pending, flow, timings)
        if keyframe:
            self._request_keyframe(frame.image, seq, op)
        iam, caught_up = self._catch_up(seq, timings)
        if self._state is None:
            iam, caught_up = self._wait_first_keyframe(seq, timings)
        elif not caught_up:
            iam = self._propagate_old(flow, timings)
        refined = False
        if self._state is not None and iam is not None and op.refine:
            refined = self._refine(frame.image, seq, op, iam.mask, timings)
        result = self._result(iam, refined, camera_hw)
        self._fill_info(result.info, frame, seq, op, keyframe, timings, start)
        return result

    def _next_flow(self, image_bgr, op, timings) -> Optional[np.ndarray]:
        """Flow current -> previous processed frame, or None (W off, or no previous gray)."""
        gray_cur = to_gray(image_bgr) if op.warp else None
        gray_prev, self._gray_prev = self._gray_prev, gray_cur
        if gray_cur is None or gray_prev is None:
            return None
        flow, self._flow_backward = consecutive_flows(self._flow, gray_cur, gray_prev,
                                                      self._config.iam, timings)
        return flow

    def _request_keyframe(self, image_bgr, seq, op) -> None:
        model = self._inference.model
        camera_hw = image_bgr.shape[:2]

        def work(image=image_bgr, downscale=op.downscale):
            prediction = model.predict(downscale_image(image, downscale))
            return state_from_prediction(prediction, camera_hw)

        request = self._inference.submit(self._key, 'keyframe', seq, work)
        self._pending.append(PendingKeyframe(request, seq))

    def _collect_failures(self) -> None:
        """Drop failed keyframe requests; the frame about to be decided becomes a keyframe."""
        failed = [p for p in self._pending if p.request.done and p.request.error is not None]
        if failed:
            self._pending = [p for p in self._pending if p not in failed]
            self._stats.count('errors', len(failed))
            self._scheduler.force_keyframe()

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
        self._state, iam = usable.carry_forward(seq, self._config.iam, timings)
        return iam, True

    def _wait_first_keyframe(self, seq, timings):
        while self._pending and not self._pending[-1].request.done:
            with self._cond:
                if self._closed:
                    return None, False
            self._pending[-1].request.wait(_POLL_S)
        return self._catch_up(seq, timings)

    def _propagate_old(self, flow, timings):
        if flow is None:
            self._state.age += 1  # W off (or W just switched on): hold
            return None
        self._state, iam = propagate(self._state, flow, self._config.iam,
                                     flow_prev_to_cur=self._flow_backward, timings=timings)
        return iam

    def _refine(self, image_bgr, seq, op, mask, timings) -> bool:
        refiner = self._inference.refiner
        if refiner is None:
            return False
        features = aligned_features(self._state, timings)
        probs = aligned_probs(self._state, timings)

        def work(image=image_bgr, downscale=op.downscale):
            return refiner.refine(downscale_image(image, downscale), probs, features)

        request = self._inference.submit(self._key, 'refine', seq, work)
        while not request.wait(_POLL_S):
            with self._cond:
                if self._closed:
                    return False
        if not request.ok:
            self._stats.count('errors')
            return False
        apply_refinement(self._state, request.result, mask)
        timings['refine_ms'] = request.elapsed_ms
        return True

    def _result(self, iam, refined, camera_hw) -> FrameResult:
        if self._state is None:
            labels = np.full(camera_hw, 255, np.uint8)
            info = FrameInfo(frames_since_keyframe=-1)
            return FrameResult(info, labels, None, mask_to_camera(None, camera_hw))
        fraction = math.nan if iam is None else float(iam.inconsistent_fraction)
        self._last_fraction = fraction
        info = FrameInfo(frames_since_keyframe=self._state.age, refined=refined,
                         inconsistent_fraction=fraction)
        mask = mask_to_camera(None if iam is None else iam.mask, camera_hw)
        return FrameResult(info, self._state.labels, current_probs(self._state), mask)

    def _fill_info(self, info, frame, seq, op, keyframe, timings, start) -> None:
        info.seq = seq
        info.stamp_ns = frame.stamp_ns
        info.keyframe = keyframe
        info.operating_point = op.name
        info.dropped_frames = frame.dropped_before
        for key, value in timings.items():
            setattr(info, key, value)
        info.total_ms = (time.perf_counter() - start) * 1000.0

    def _emit(self, result: FrameResult, frame: _Frame) -> None:
        result.meta = frame.meta
        result.info.latency_ms = (self._clock() - frame.submit_time_s) * 1000.0
        self._stats.record(result.info)
        try:
            self._on_output(result)
        except Exception:  # noqa: B902 - a consumer bug must not stop the stream
            LOGGER.exception('%s: on_output callback failed', self.name)


class EvsRuntime:
    """One shared :class:`InferenceWorker` plus any number of :class:`EvsStream`.

    Args:
        config: settings for the worker (``runtime.inference_threads``) and new streams.
        model: the segmentation network; refiner: the Refiner or None.
    """

    def __init__(self, config: EvsConfig, model, refiner=None):
        self.config = config
        self.inference = InferenceWorker(model, refiner, threads=config.runtime.inference_threads)
        self.streams: Dict[str, EvsStream] = {}

    def add_stream(self, name: str, on_output: Callable[[FrameResult], None],
                   config: EvsConfig = None, flow_estimator=None) -> EvsStream:
        """Create and start a stream called ``name`` (unique) sharing the inference worker."""
        if name in self.streams:
            raise ValueError(f'stream {name!r} already exists; pick another name')
        stream = EvsStream(config or self.config, self.inference, on_output, name=name,
                           flow_estimator=flow_estimator)
        self.streams[name] = stream
        return stream

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Switch every stream to ``op`` from its next frame on."""
        for stream in self.streams.values():
            stream.set_operating_point(op)

    def set_config(self, config: EvsConfig) -> None:
        """Give every stream new operating-point, flow and IAM settings from its next frame on."""
        for stream in self.streams.values():
            stream.set_config(config)

    def stats(self) -> Dict[str, Dict[str, float]]:
        """``{stream name: stream.stats()}``."""
        return {name: stream.stats() for name, stream in self.streams.items()}

    def close(self, timeout_s: float = 5.0) -> bool:
        """Close every stream, then the inference worker; True if all threads stopped."""
        stopped = [stream.close(timeout_s) for stream in self.streams.values()]
        stopped.append(self.inference.close(timeout_s))
        return all(stopped)
