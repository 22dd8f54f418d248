"""The inference worker: one thread that runs the networks for every stream (paper §3.1).

In the paper the GPU holds the segmentation network and the Refiner while the CPU computes flow
in parallel. :class:`InferenceWorker` is that GPU side: a single thread (torch releases the GIL
inside its kernels, so it runs in parallel with the flow workers) serving requests from several
streams. Each stream has two *latest-request slots*: a keyframe slot (a new keyframe request
replaces one that has not started yet, which completes as ``superseded``) and a refine slot (the
stream waits for it). The worker takes streams round-robin, so N cameras share one network
fairly; within a stream refine requests go first because the stream is blocked on them.
"""

import itertools
import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

LOGGER = logging.getLogger('evs_ros')


class InferenceRequest:
    """One unit of work for the inference worker; completes exactly once.

    Attributes:
        kind: ``'keyframe'`` or ``'refine'``.
        frame_seq: the stream's frame index the request belongs to.
        result: what the work function returned (None until done, or on error).
        error: the exception the work raised, or None.
        superseded: replaced by a newer keyframe request before it started (never ran).
        elapsed_ms: wall time of the work in the worker thread.
        priority: with the ``stalest`` policy, keyframes of higher priority (the age of the
            labels the stream shows) run first.
    """

    def __init__(self, kind: str, frame_seq: int, work: Callable[[], Any],
                 priority: float = 0.0):
        self.kind = kind
        self.frame_seq = frame_seq
        self.priority = priority
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.superseded = False
        self.elapsed_ms = 0.0
        self.stream_key: Optional[int] = None
        self._work = work
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        """True once the request has a result, an error, or was superseded/cancelled."""
        return self._done.is_set()

    @property
    def ok(self) -> bool:
        """True if the work ran and returned without an exception."""
        return self._done.is_set() and self.error is None and not self.superseded

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Block until done (or ``timeout_s``); returns :attr:`done`."""
        return self._done.wait(timeout_s)

    def run(self) -> None:
        """Run the work in the calling thread and complete the request."""
        start = time.perf_counter()
        try:
            self.result = self._work()
        except Exception as error:  # noqa: B902 - any model failure must not kill the worker
            self.error = error
        self.elapsed_ms = (time.perf_counter() - start) * 1000.0
        self._work = None
        self._done.set()

    def complete(self, result: Any = None, error: Optional[BaseException] = None,
                 elapsed_ms: float = 0.0) -> None:
        """Complete with a result computed elsewhere (a batch the worker ran for several)."""
        self.result, self.error, self.elapsed_ms = result, error, elapsed_ms
        self._work = None
        self._done.set()

    @property
    def batch_key(self):
        """Input size of a batchable keyframe (its work's ``input_hw``), else None."""
        return getattr(self._work, 'input_hw', None)

    def cancel(self, reason: BaseException = None) -> None:
        """Complete without running: ``superseded`` (no reason) or with ``error=reason``."""
        if reason is None:
            self.superseded = True
        else:
            self.error = reason
        self._work = None
        self._done.set()


class InferenceWorker:
    """Runs the segmentation network and the Refiner for any number of streams, one thread.

    Args:
        model: a :class:`~evs_ros.models.base.SegmentationModel`.
        refiner: a :class:`~evs_ros.models.base.RefinerModel`, or None.
        threads: torch intra-op threads, set in the worker thread if torch is imported.
        policy: ``stalest`` or ``round_robin`` (which waiting keyframe runs first).
        batch: up to this many waiting keyframes of one input size run in one network call
            (models with ``predict_batch``; worthwhile on a GPU).
    """

    def __init__(self, model, refiner=None, threads: int = 1, policy: str = 'stalest',
                 batch: int = 1):
        self.model = model
        self.refiner = refiner
        self._threads = threads
        self._policy = policy
        self._batch = batch if hasattr(model, 'predict_batch') else 1
        self._lock = threading.Condition()
        self._slots: Dict[int, Dict[str, Optional[InferenceRequest]]] = {}
        self._names: Dict[int, str] = {}
        self._order = []
        self._next_index = 0
        self._keys = itertools.count()
        self._closed = False
        self._running = False
        self._thread = threading.Thread(target=self._loop, name='evs-inference', daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def register(self, name: str = '') -> int:
        """Return a new stream key (one per stream); ``name`` starts its log lines."""
        with self._lock:
            key = next(self._keys)
            self._slots[key] = {'refine': None, 'keyframe': None}
            self._order.append(key)
            self._names[key] = name
            return key

    def unregister(self, key: int) -> None:
        """Forget a stream; its pending (not started) requests complete as superseded."""
        with self._lock:
            slots = self._slots.pop(key, None)
            self._names.pop(key, None)
            if key in self._order:
                self._order.remove(key)
            self._lock.notify_all()  # wait_idle may be waiting on these slots
        for request in (slots or {}).values():
            if request is not None:
                request.cancel()

    def submit(self, key: int, kind: str, frame_seq: int, work: Callable[[], Any],
               priority: float = 0.0) -> InferenceRequest:
        """Queue ``work`` (run in the worker thread) in the stream's ``kind`` slot.

        A pending request already in that slot is superseded. After :meth:`close` the request
        completes at once with a ``RuntimeError``.
        """
        request = InferenceRequest(kind, frame_seq, work, priority)
        request.stream_key = key
        with self._lock:
            if self._closed or key not in self._slots:
                request.cancel(RuntimeError('inference worker is closed'))
                return request
            replaced = self._slots[key][kind]
            self._slots[key][kind] = request
            self._lock.notify_all()
        if replaced is not None:
            replaced.cancel()
        return request

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no request is queued or running (tests, offline tools); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._running or any(r for s in self._slots.values() for r in s.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._lock.wait(remaining)
            return True

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop the thread; pending requests fail with ``RuntimeError``.

        An inference already running finishes first (a model call cannot be interrupted); if it
        takes longer than ``timeout_s`` the daemon thread is left to finish on its own and False
        is returned.
        """
        with self._lock:
            self._closed = True
            pending = [r for slots in self._slots.values() for r in slots.values() if r]
            for slots in self._slots.values():
                slots.update(refine=None, keyframe=None)
            self._lock.notify_all()
        for request in pending:
            request.cancel(RuntimeError('inference worker closed before the request ran'))
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            LOGGER.warning('inference worker still busy after %.1f s; left to finish', timeout_s)
            return False
        return True

    def _next_requests(self) -> List[InferenceRequest]:
        """Pop the next request (refine first), plus same-size keyframes to batch with it.

        [] when closed.
        """
        with self._lock:
            while not self._closed:
                request = self._pop_round_robin()
                if request is not None:
                    self._running = True
                    return [request] + self._batch_mates(request)
                self._lock.wait()
            return []

    def _batch_mates(self, first: InferenceRequest) -> List[InferenceRequest]:
        """Other streams' waiting keyframes with ``first``'s input size (under the lock)."""
        size_hw = first.batch_key
        mates = []
        for key in self._order:
            waiting = self._slots[key]['keyframe']
            if (len(mates) + 1 < self._batch and size_hw is not None and waiting is not None
                    and waiting.batch_key == size_hw):
                mates.append(waiting)
                self._slots[key]['keyframe'] = None
        return mates

    def _pop_round_robin(self) -> Optional[InferenceRequest]:
        """Refinements first (their streams wait), then keyframes.

        The stalest stream's first (``stalest`` policy), ties and the ``round_robin`` policy in
        round-robin order.
        """
        count = len(self._order)
        rotated = [self._order[(self._next_index + offset) % count] for offset in range(count)]
        for kind in ('refine', 'keyframe'):
            waiting = [key for key in rotated if self._slots[key][kind] is not None]
            if not waiting:
                continue
            key = waiting[0]
            if kind == 'keyframe' and self._policy == 'stalest':
                key = max(waiting, key=lambda k: self._slots[k][kind].priority)
            request, self._slots[key][kind] = self._slots[key][kind], None
            self._next_index = (self._order.index(key) + 1) % count
            return request
        return None

    def _loop(self) -> None:
        if 'torch' in sys.modules:
            sys.modules['torch'].set_num_threads(self._threads)
        if hasattr(self.model, 'set_threads'):  # networks with their own thread pool (TFLite)
            self.model.set_threads(self._threads)
        while True:
            requests = self._next_requests()
            if not requests:
                return
            if len(requests) == 1:
                requests[0].run()
            else:
                self._run_batch(requests)
            with self._lock:
                self._running = False
                self._lock.notify_all()
            for request in requests:
                if request.error is not None:
                    LOGGER.error('%s: %s inference failed for frame %d: %s: %s',
                                 self._names.get(request.stream_key, ''), request.kind,
                                 request.frame_seq, type(request.error).__name__,
                                 request.error, exc_info=request.error)

    def _run_batch(self, requests: List[InferenceRequest]) -> None:
        """One network call for several keyframes; each request finishes its own state."""
        works = [request._work for request in requests]
        start = time.perf_counter()
        try:
            predictions = self.model.predict_batch([work.network_input() for work in works])
        except Exception as error:  # noqa: B902 - fail them all, the worker goes on
            for request in requests:
                request.complete(error=error)
            return
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        for request, work, prediction in zip(requests, works, predictions):
            try:
                request.complete(work.finish(prediction), elapsed_ms=elapsed_ms)
            except Exception as error:  # noqa: B902
                request.complete(error=error, elapsed_ms=elapsed_ms)


class InlineInference:
    """Runs every request at once in the calling thread: the synchronous pipeline's inference.

    Same interface as :class:`InferenceWorker`, so the one per-frame stepper serves both the
    synchronous pipeline and the runtime (where it also gives the parity test's reference).

    Args:
        model: a :class:`~evs_ros.models.base.SegmentationModel`.
        refiner: a :class:`~evs_ros.models.base.RefinerModel`, or None.
        raise_errors: re-raise a model's exception to the caller (the synchronous pipeline);
            otherwise the request completes with ``error`` set, like the worker's.
    """

    def __init__(self, model, refiner=None, raise_errors: bool = True):
        self.model = model
        self.refiner = refiner
        self.raise_errors = raise_errors
        self._keys = itertools.count()
        self.closed = False

    def register(self, name: str = '') -> int:
        """Return a new stream key."""
        return next(self._keys)

    def unregister(self, key: int) -> None:
        """Nothing is ever queued: nothing to drop."""

    def submit(self, key: int, kind: str, frame_seq: int, work: Callable[[], Any],
               priority: float = 0.0) -> InferenceRequest:
        """Run ``work`` now and return the completed request."""
        request = InferenceRequest(kind, frame_seq, work, priority)
        request.run()
        if request.error is not None and self.raise_errors:
            raise request.error
        return request

    def close(self, timeout_s: float = 0.0) -> bool:
        """Nothing runs in the background: always True."""
        self.closed = True
        return True
