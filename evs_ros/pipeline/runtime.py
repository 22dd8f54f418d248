"""The real-time runtime.

A flow worker per stream plus one shared inference worker (paper §3.1, design §4).

:class:`EvsStream` gives every accepted frame a :class:`~evs_ros.pipeline.results.FrameResult` at
flow speed. It is three parts: a bounded :class:`~evs_ros.pipeline.frame_buffer.LatestFrameBuffer`
(drop-oldest, stamp rules), a flow-worker thread, and the one per-frame
:class:`~evs_ros.pipeline.stepper.FrameStepper` the synchronous pipeline uses too. Keyframes go to
the shared :class:`~evs_ros.pipeline.inference.InferenceWorker` asynchronously; a result that
arrives while later frames are processed is carried forward to the current frame ("catch-up").

Rules a user can rely on (see also :mod:`evs_ros.pipeline.frame_buffer`):

* **What waits.** The very first frame (and the first after a resolution change, which resets the
  state) waits for its own keyframe result: there is nothing to propagate yet. With R on, a
  propagated frame waits for its Refiner result. Nothing else waits for the network.
* **Failures.** An exception in the network or the Refiner is logged (logger 'evs_ros') and counted
  (``stats()['errors']``); the stream goes on propagating the old state (or unrefined probs) and
  asks for a keyframe again on the next frame. If the very first keyframe fails, that frame is
  emitted with all labels 255 (ignore) and ``frames_since_keyframe = -1``.
* **Closing.** ``close()`` stops the flow worker (frames still buffered are discarded) and nothing
  is emitted after it returns. An inference already running cannot be interrupted: it finishes in
  the inference thread, which ``EvsRuntime.close`` joins with a timeout.
"""

import logging
import threading
import time
from dataclasses import replace
from typing import Callable, Dict, Optional

import cv2
import numpy as np

from evs_ros.config import EvsConfig, OperatingPoint
from evs_ros.pipeline.flow_prefetch import FlowPrefetcher
from evs_ros.pipeline.frame_buffer import STAMP_JUMP_BACK_NS, BufferedFrame, LatestFrameBuffer
from evs_ros.pipeline.inference import InferenceWorker
from evs_ros.pipeline.input_checks import check_frame, min_frame_side_px
from evs_ros.pipeline.results import FrameResult
from evs_ros.pipeline.stats import StreamStats
from evs_ros.pipeline.stepper import FrameStepper

__all__ = ['STAMP_JUMP_BACK_NS', 'EvsRuntime', 'EvsStream']

LOGGER = logging.getLogger('evs_ros')


class EvsStream:
    """One camera stream: bounded input, a flow-worker thread, results via ``on_output``.

    Args:
        config: settings (operating point, flow, IAM, runtime).
        inference: the (possibly shared) :class:`InferenceWorker`, or an
            :class:`~evs_ros.pipeline.inference.InlineInference` (the network then runs in the
            flow-worker thread, frame by frame, exactly like the synchronous pipeline).
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
        self._runtime_config = config.runtime
        self._on_output = on_output
        self._clock = clock
        self._stats = StreamStats()
        self._buffer = LatestFrameBuffer(config.runtime.input_queue_size, self._stats, name,
                                         clock)
        self._stepper = FrameStepper(config, inference, flow_estimator, name, self._stats,
                                     is_closed=lambda: self._buffer.closed)
        self._config_lock = threading.Lock()
        self._pending_config: Optional[EvsConfig] = None
        self._emit_lock = threading.RLock()
        self._prefetcher = (FlowPrefetcher(config.runtime.flow_prefetch_threads)
                            if config.runtime.flow_prefetch_threads > 0 else None)
        self._previous: Optional[BufferedFrame] = None
        self.min_side_px = min_frame_side_px(inference.model)
        self._thread = threading.Thread(target=self._loop, name=f'evs-flow-{name}', daemon=True)
        self._thread.start()

    def submit(self, image_bgr: np.ndarray, stamp_ns: int, meta=None, wait: bool = False
               ) -> bool:
        """Queue a uint8 (H, W, 3) BGR frame; returns at once (``wait=False``).

        Returns False if the frame is rejected (stream closed, or ``stamp_ns`` not strictly
        greater than the last accepted stamp; 0 means "no stamp": arrival order). Accepting may
        drop the oldest buffered frame; ``wait=True`` blocks until the buffer has room instead
        (offline feeding: every frame is processed, as fast as the stream takes them).

        Raises:
            FrameRejected: not uint8 (H, W, 3), or a side under :attr:`min_side_px` (the
                network's stride; :mod:`evs_ros.pipeline.input_checks`).
        """
        check_frame(image_bgr, self.min_side_px)
        return self._buffer.put(image_bgr, stamp_ns, meta, wait)

    def set_config(self, config: EvsConfig) -> None:
        """Use ``config`` (operating point, flow, IAM) from the next processed frame on.

        Safe from any thread: the flow worker adopts it between two frames (the one route of a
        run-time change). Runtime settings (threads, buffer length) are fixed at construction.
        """
        with self._config_lock:
            self._pending_config = replace(config, runtime=self._runtime_config)

    @property
    def config(self) -> EvsConfig:
        """The settings of the next processed frame."""
        with self._config_lock:
            return self._pending_config or self._stepper.config

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point of the next processed frame."""
        return self.config.operating_point

    def queue_length(self) -> int:
        """Frames buffered and not yet processed.

        At most ``runtime.input_queue_size``, except before the first output:
        ``frame_buffer.STARTUP_HOLD_FRAMES``.
        """
        return len(self._buffer)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every buffered frame was emitted; False on timeout or when closed."""
        return self._buffer.drain(timeout_s)

    def stats(self) -> Dict[str, float]:
        """Counters and ``<stage>_p50`` / ``<stage>_p99`` in ms over the last 1000 samples.

        Counters: frames_in (accepted), frames_out, dropped, rejected, errors, keyframes
        (keyframe results used), max_queue (highest buffer length seen). Stages: flow_ms,
        warp_ms, iam_ms, inference_ms, refine_ms (only frames where the stage ran), latency_ms.
        NaN when no sample yet.
        """
        return self._stats.snapshot()

    @property
    def errors(self) -> int:
        """Failed network runs and frames so far (``stats()['errors']``, cheap to read)."""
        return self._stats.count('errors', 0)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop the flow worker (joins it).

        Buffered frames are discarded and nothing is emitted once this returns. True if the worker
        stopped.
        """
        with self._emit_lock:
            self._buffer.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        self._stepper.close()
        if self._prefetcher is not None:
            self._prefetcher.close()
        return not self._thread.is_alive()

    def _loop(self) -> None:
        cv2.setNumThreads(self._runtime_config.flow_threads)
        while True:
            frame = self._buffer.take()
            if frame is None:
                return
            try:
                result = self._process(frame)
                if result is not None:
                    self._emit(result, frame)
            except Exception:  # noqa: B902 - a bad frame must not kill the stream
                LOGGER.exception('%s: frame processing failed', self.name)
                self._stats.count('errors')
            finally:
                self._buffer.task_done()

    def _process(self, frame: BufferedFrame) -> Optional[FrameResult]:
        self._apply_pending_config()
        if frame.restart:
            self._stepper.reset()
        prefetched = self._take_prefetched(frame)
        self._prefetch_waiting(frame)
        self._previous = frame
        return self._stepper.step(frame.image, frame.stamp_ns, prefetched)

    def _take_prefetched(self, frame: BufferedFrame):
        """Return the flow of (frame, previous processed frame) if another core computed it."""
        if self._prefetcher is None or self._previous is None or frame.restart:
            return None
        return self._prefetcher.take(frame.index, self._previous.index)

    def _prefetch_waiting(self, frame: BufferedFrame) -> None:
        """Start the flows of the frames waiting behind ``frame`` on the prefetch threads."""
        if self._prefetcher is None or not self._stepper.operating_point.warp:
            return
        flow_config, iam_config = self._stepper.flow_config(), self._stepper.config.iam
        chain = [frame] + self._buffer.waiting()
        for previous, current in zip(chain, chain[1:]):
            self._prefetcher.submit(current.index, previous.index, current.image,
                                    previous.image, flow_config, iam_config)

    def _apply_pending_config(self) -> None:
        """In the flow worker: adopt a config given to :meth:`set_config`."""
        with self._config_lock:
            config, self._pending_config = self._pending_config, None
        if config is not None:
            self._stepper.set_config(config)

    def _emit(self, result: FrameResult, frame: BufferedFrame) -> None:
        result.meta = frame.meta
        result.info.dropped_frames = frame.dropped_before
        result.info.latency_ms = (self._clock() - frame.submit_time_s) * 1000.0
        with self._emit_lock:
            if self._buffer.closed:
                return  # closed while this frame was processed: nothing after close()
            self._stats.record(result.info)
            self._buffer.release_hold(frame.index)
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
        self._lock = threading.Lock()  # nodes of a multi-threaded container add streams
        self.config = config
        self.inference = InferenceWorker(model, refiner, threads=config.runtime.inference_threads,
                                         policy=config.runtime.keyframe_priority,
                                         batch=config.runtime.keyframe_batch)
        self.streams: Dict[str, EvsStream] = {}

    def add_stream(self, name: str, on_output: Callable[[FrameResult], None],
                   config: EvsConfig = None, flow_estimator=None) -> EvsStream:
        """Create and start a stream called ``name`` (unique) sharing the inference worker."""
        with self._lock:
            if name in self.streams:
                raise ValueError(f'stream {name!r} already exists; pick another name')
            stream = EvsStream(config or self.config, self.inference, on_output, name=name,
                               flow_estimator=flow_estimator)
            self.streams[name] = stream
            return stream

    def remove_stream(self, name: str, timeout_s: float = 5.0) -> bool:
        """Close and forget stream ``name`` (nothing is emitted for it afterwards)."""
        with self._lock:
            stream = self.streams.pop(name, None)
        return stream.close(timeout_s) if stream is not None else True

    def stats(self) -> Dict[str, Dict[str, float]]:
        """Return the statistics of every stream: ``{stream name: stats dict}``."""
        return {name: stream.stats() for name, stream in self.streams.items()}

    @property
    def model(self):
        """The segmentation network every stream shares."""
        return self.inference.model

    @property
    def refiner(self):
        """The Refiner every stream shares, or None."""
        return self.inference.refiner

    def close(self, timeout_s: float = 5.0) -> bool:
        """Close every stream, then the inference worker; True if all threads stopped."""
        stopped = [stream.close(timeout_s) for stream in list(self.streams.values())]
        stopped.append(self.inference.close(timeout_s))
        return all(stopped)
