"""Flow of upcoming frame pairs on other cores while the flow worker propagates (design §4).

A stream's flow worker handles frames one after the other: DIS between the frame and the
previous one, then the sequential part (warping the state, IAM, refinement, output). DIS only
needs the two images, so as soon as frames wait in the stream's buffer their flows can be
computed on other cores (``runtime.flow_prefetch_threads``, each thread with its own DIS object)
while the flow worker is busy; when the worker reaches a frame, its flow is already there. This
is how one stream uses more than one core when the network is idle, and it changes nothing in the
result: the same DIS on the same images.
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Optional, Tuple

import numpy as np

from evs_ros.config import FlowConfig, IamConfig
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.pipeline.state import consecutive_flows


class PrefetchedFlow:
    """A flow being computed for (current frame, previous frame) with given settings."""

    def __init__(self, future: Future, flow_config: FlowConfig, iam_config: IamConfig):
        self.future = future
        self.flow_config = flow_config
        self.iam_config = iam_config

    def result(self, flow_config: FlowConfig, iam_config: IamConfig) -> Optional[tuple]:
        """Return the prefetched flows if computed with these settings and without error.

        (flow_cur_to_prev, flow_prev_to_cur or None, flow_ms), else None (the caller computes it
        itself).
        """
        if (flow_config, iam_config) != (self.flow_config, self.iam_config):
            self.future.cancel()
            return None
        try:
            return self.future.result()
        except Exception:  # noqa: B902 - e.g. a resolution change: compute it again
            return None


class FlowPrefetcher:
    """A pool of ``workers`` threads computing flows of frame pairs ahead of the flow worker.

    Frames are identified by increasing integers (the buffer's arrival index); :meth:`take`
    returns the prefetched flow of exactly (current, previous) or None.
    """

    def __init__(self, workers: int):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix='evs-flow-prefetch')
        self._local = threading.local()
        self._pending: Dict[Tuple[int, int], PrefetchedFlow] = {}

    def submit(self, index_cur: int, index_prev: int, image_cur: np.ndarray,
               image_prev: np.ndarray, flow_config: FlowConfig, iam_config: IamConfig) -> None:
        """Start the flow of frames (index_cur, index_prev) unless it is already under way."""
        key = (index_cur, index_prev)
        if key not in self._pending:
            future = self._pool.submit(self._compute, image_cur, image_prev, flow_config,
                                       iam_config)
            self._pending[key] = PrefetchedFlow(future, flow_config, iam_config)

    def take(self, index_cur: int, index_prev: int) -> Optional[PrefetchedFlow]:
        """Return the prefetched flow of frames (index_cur, index_prev).

        Pairs that can no longer be asked for (their previous frame is this one's or older) are
        cancelled.
        """
        found = self._pending.pop((index_cur, index_prev), None)
        for key in [key for key in self._pending if key[1] <= index_prev]:
            self._pending.pop(key).future.cancel()
        return found

    def _compute(self, image_cur, image_prev, flow_config, iam_config):
        start = time.perf_counter()
        estimator = self._estimator(flow_config)
        flow, backward = consecutive_flows(estimator, to_gray(image_cur), to_gray(image_prev),
                                           iam_config)
        return flow, backward, (time.perf_counter() - start) * 1000.0

    def _estimator(self, flow_config: FlowConfig) -> FlowEstimator:
        """Return this thread's DIS object for ``flow_config`` (DIS is not thread-safe)."""
        estimator = getattr(self._local, 'estimator', None)
        if estimator is None or estimator.config != flow_config:
            estimator = self._local.estimator = FlowEstimator(flow_config)
        return estimator

    def close(self) -> None:
        """Drop what is queued; running computations finish on their own."""
        for prefetched in self._pending.values():
            prefetched.future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
