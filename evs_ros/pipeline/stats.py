"""Counters and stage-time percentiles of a stream (feeds ``/diagnostics``, design §5)."""

import collections
import math
import threading
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from evs_ros.pipeline.results import STAGES, FrameInfo

COUNTERS = ('frames_in', 'frames_out', 'dropped', 'rejected', 'errors', 'keyframes', 'max_queue')
TIMINGS = STAGES + ('latency_ms',)


class StreamStats:
    """Thread-safe counters plus the last ``window`` samples of each stage time (ms)."""

    def __init__(self, window: int = 1000):
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._samples = {key: collections.deque(maxlen=window) for key in TIMINGS}

    def count(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to counter ``key``; returns the new value."""
        with self._lock:
            self._counts[key] += amount
            return self._counts[key]

    def raise_to(self, key: str, value: int) -> None:
        """Set counter ``key`` to ``max(current, value)`` (high-water marks)."""
        with self._lock:
            self._counts[key] = max(self._counts[key], value)

    def record(self, info: FrameInfo) -> None:
        """Count one output; sample its stages that ran (> 0 ms) and its latency."""
        with self._lock:
            self._counts['frames_out'] += 1
            for key in STAGES:
                value = getattr(info, key)
                if value > 0.0:
                    self._samples[key].append(value)
            self._samples['latency_ms'].append(info.latency_ms)

    def snapshot(self) -> Dict[str, float]:
        """Counters plus ``<stage>_p50`` / ``<stage>_p99`` in ms (NaN before any sample)."""
        with self._lock:
            stats: Dict[str, float] = dict(self._counts)
            samples = {key: list(values) for key, values in self._samples.items()}
        for key, values in samples.items():
            for name, value in percentiles(values, digits=None, empty=math.nan).items():
                stats[f'{key}_{name}'] = value
        return stats


def percentiles(values: Iterable[float], quantiles: Sequence[float] = (50, 99),
                digits: Optional[int] = 3, empty=None) -> Dict[str, Optional[float]]:
    """``{'p50': ..., 'p99': ...}`` of ``values`` (rounded to ``digits``).

    ``empty`` for each when there is no value. The one percentile summary of every report and
    diagnostic.
    """
    array = np.asarray(list(values), np.float64)
    if array.size == 0:
        return {f'p{q:g}': empty for q in quantiles}
    result = np.percentile(array, list(quantiles))
    return {f'p{q:g}': float(v) if digits is None else round(float(v), digits)
            for q, v in zip(quantiles, result)}
