"""Runtimes shared by several users in one process: one network in memory per model config.

A component container loads several EvsNodes into one process; they ask
:meth:`RuntimePool.acquire` for a runtime with their ``config.model``. Nodes with the same model
settings share one :class:`~evs_ros.pipeline.runtime.EvsRuntime` (one inference worker, one
network, streams served round-robin); the last :meth:`RuntimePool.release` closes it. A new runtime
is warmed up (:func:`warm_up`) before it is handed out, so the first camera frames do not wait for
the network's slow first run, nor for an engine's export: the warm-up opens the engine graphs
cached for earlier resolutions, and a resolution without one is built in the background while
torch labels its frames (``evs_ros/models/graph.py``).
"""

import logging
import threading
import time
from typing import Dict, Optional, Tuple


from evs_ros.config import EvsConfig
from evs_ros.pipeline.runtime import EvsRuntime

LOGGER = logging.getLogger('evs_ros')
WARM_UP_HW = (256, 512)
"""Size of the warm-up frame: big enough to initialise every kernel, cheap on a CPU."""


def warm_up(model, refiner=None, size_hw: Tuple[int, int] = WARM_UP_HW,
            threads: Optional[int] = None) -> float:
    """Warm the networks up before any camera frame; return the seconds it took.

    :func:`evs_ros.models.graph.warm_up`: cached engine graphs, the torch reference on a gray
    frame, background builds from then on.
    """
    from evs_ros.models.graph import warm_up as warm_up_graphs
    start = time.perf_counter()
    opened = warm_up_graphs(model, refiner, size_hw, threads)
    if opened:
        LOGGER.info('engine graphs opened at warm-up: %s', ', '.join(opened))
    return time.perf_counter() - start


def pool_key(config: EvsConfig) -> tuple:
    """Return what must match for two users to share a runtime.

    The networks (not the palette, which only colours) and the inference worker's settings.
    """
    model, runtime = config.model, config.runtime
    return (model.backend, model.refiner, model.device, model.fp16, model.engine,
            model.precision, model.calibration, model.input_short_side, model.window,
            runtime.inference_threads, runtime.keyframe_priority, runtime.keyframe_batch)


class RuntimePool:
    """Reference-counted runtimes keyed by :func:`pool_key` (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runtimes: Dict[tuple, EvsRuntime] = {}
        self._users: Dict[int, int] = {}

    def acquire(self, config: EvsConfig, need_refiner: bool = True) -> EvsRuntime:
        """Return a runtime for ``config.model`` (loaded and warmed up on first use).

        Raises whatever :func:`~evs_ros.models.loading.load_models` raises (one-line reasons).
        """
        key = pool_key(config)
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None:
                runtime = self._create(config, need_refiner)
                self._runtimes[key] = runtime
            self._users[id(runtime)] = self._users.get(id(runtime), 0) + 1
            return runtime

    @staticmethod
    def _create(config: EvsConfig, need_refiner: bool) -> EvsRuntime:
        from evs_ros.models.loading import load_models
        model, refiner = load_models(config.model, need_refiner)
        seconds = warm_up(model, refiner, threads=config.runtime.inference_threads)
        LOGGER.info('network %s ready (warm-up %.2f s)', config.model.backend, seconds)
        return EvsRuntime(config, model, refiner)

    def release(self, runtime: EvsRuntime, timeout_s: float = 5.0) -> None:
        """Give ``runtime`` back; the last user closes it."""
        with self._lock:
            users = self._users.get(id(runtime), 0) - 1
            if users > 0:
                self._users[id(runtime)] = users
                return
            self._users.pop(id(runtime), None)
            self._runtimes = {k: r for k, r in self._runtimes.items() if r is not runtime}
        runtime.close(timeout_s)

    def __len__(self) -> int:
        """Runtimes (networks) currently loaded."""
        with self._lock:
            return len(self._runtimes)
