"""The runtime's bounded latest-frame input buffer and its stamp rules (design §4).

Rules a user can rely on:

* **Bounded input.** ``put`` never blocks; when the buffer holds ``capacity`` frames the *oldest*
  unprocessed frame is dropped and counted (``dropped``; the next taken frame carries the count in
  ``dropped_before``). Nothing is ever queued without bound.
* **No drops at start.** Until the stream's first output (and again after a restart), up to
  :data:`STARTUP_HOLD_FRAMES` frames wait instead: the first frame waits for the network's first
  result, and the frames that arrived meanwhile are then propagated from it.
* **Monotonic stamps.** A frame whose stamp is not strictly greater than the last accepted stamp
  is rejected (``put`` returns False, ``rejected`` counted, a warning on the 'evs_ros' logger), so
  outputs stay in stamp order. A jump back by more than :data:`STAMP_JUMP_BACK_NS` (a looping
  bag, a reset simulation clock) is accepted instead and marks the frame ``restart``.
* **No stamp.** A stamp of 0 (drivers that leave the header empty) means "no stamp": the frame is
  taken in arrival order, without the order check, and the stream says so in one log line.
"""

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import numpy as np

from evs_ros.pipeline.stats import StreamStats

LOGGER = logging.getLogger('evs_ros')
STAMP_JUMP_BACK_NS = 1_000_000_000
"""A stamp more than this before the last one restarts the stream (``ros2 bag play --loop``,
a simulation clock reset) instead of being rejected forever; smaller steps back are rejected."""
STARTUP_HOLD_FRAMES = 16
"""Frames kept (at least) until a stream's first output: the first keyframe takes a network run
(about 0.1-0.5 s for ICNet on a CPU), during which a 17-30 Hz camera sends a few frames."""
_POLL_S = 0.05


@dataclass
class BufferedFrame:
    """One accepted frame: uint8 (H, W, 3) BGR ``image``, its stamp and the caller's ``meta``."""

    image: np.ndarray
    stamp_ns: int
    meta: Any
    submit_time_s: float
    dropped_before: int = 0
    restart: bool = False
    index: int = 0
    """Arrival order among the frames this buffer accepted (0, 1, 2, ...)."""


class LatestFrameBuffer:
    """Thread-safe drop-oldest buffer between a producer (callbacks) and one consumer thread.

    Args:
        capacity: frames kept at most (``runtime.input_queue_size``).
        stats: counters ``frames_in``, ``dropped``, ``rejected``, ``max_queue`` are kept here.
        name: stream name for logs.
        clock: monotonic clock in seconds (``submit_time_s``; injectable for tests).
        startup_hold: frames kept at least until :meth:`release_hold` (the first output).
    """

    def __init__(self, capacity: int, stats: StreamStats, name: str = 'camera',
                 clock: Callable[[], float] = time.monotonic,
                 startup_hold: int = STARTUP_HOLD_FRAMES):
        self.capacity = capacity
        self._startup_hold = startup_hold
        self._hold_from: Optional[int] = 0
        self._held_below = 0
        self.name = name
        self._stats = stats
        self._clock = clock
        self._cond = threading.Condition()
        self._frames = collections.deque()
        self._closed = False
        self._busy = False
        self._last_stamp: Optional[int] = None
        self._pending_drops = 0
        self._accepted = 0
        self._unstamped = False

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, image_bgr: np.ndarray, stamp_ns: int, meta: Any = None,
            wait: bool = False) -> bool:
        """Accept a frame unless closed or its stamp breaks the order; may drop the oldest.

        ``wait=True`` blocks until there is room instead of dropping (offline feeders that want
        every frame processed, as fast as the consumer takes them).
        """
        with self._cond:
            while wait and len(self._frames) >= self.capacity and not self._closed:
                self._cond.wait(_POLL_S)
            if self._closed:
                return False
            restart = self._is_restart(stamp_ns)
            if restart is None:
                return False
            if stamp_ns != 0:
                self._last_stamp = stamp_ns
            self._stats.count('frames_in')
            self._frames.append(BufferedFrame(image_bgr, int(stamp_ns), meta, self._clock(),
                                              restart=restart, index=self._accepted))
            if restart:
                self._hold_from = self._accepted
            self._accepted += 1
            self._drop_beyond_limit()
            self._stats.raise_to('max_queue', len(self._frames))
            self._cond.notify_all()
        return True

    def _drop_beyond_limit(self) -> None:
        """Drop the oldest frames beyond ``capacity`` (beyond the startup hold while holding).

        Frames held for a first output that has since come are never dropped for newer ones.
        """
        holding = self._hold_from is not None
        limit = max(self.capacity, self._startup_hold) if holding else self.capacity
        while True:
            droppable = [position for position, frame in enumerate(self._frames)
                         if holding or frame.index >= self._held_below]
            if len(droppable) <= limit:
                return
            position = droppable[0]
            dropped = self._frames[position]
            del self._frames[position]
            if dropped.restart:  # the jump back still happened: the next frame restarts
                self._frames[position].restart = True
            self._stats.count('dropped')
            self._pending_drops += 1

    def release_hold(self, index: int) -> None:
        """Record that the frame with arrival ``index`` was output.

        From now on drop the oldest beyond ``capacity`` among newer frames (the frames held
        meanwhile are all processed).
        """
        with self._cond:
            if self._hold_from is not None and index >= self._hold_from:
                self._hold_from = None
                self._held_below = self._accepted

    def _is_restart(self, stamp_ns: int) -> Optional[bool]:
        """Classify a stamp.

        False: in order (or no stamp: 0); True: jumped back far (restart); None: rejected.
        """
        if stamp_ns == 0:
            self._note_no_stamp()
            return False
        if self._last_stamp is None or stamp_ns > self._last_stamp:
            return False
        jump_back_ns = self._last_stamp - stamp_ns
        if jump_back_ns <= STAMP_JUMP_BACK_NS:
            self._log_rejection(stamp_ns)
            return None
        LOGGER.warning('%s: stamp jumped back by %.1f s (bag loop or sim-time reset): '
                       'restarting the stream', self.name, jump_back_ns / 1e9)
        return True

    def _note_no_stamp(self) -> None:
        if not self._unstamped:
            self._unstamped = True
            LOGGER.warning('%s: frames without a stamp (0): taken in arrival order, outputs keep '
                           'the zero stamp', self.name)

    def _log_rejection(self, stamp_ns: int) -> None:
        rejected = self._stats.count('rejected')
        if rejected == 1 or rejected % 100 == 0:
            LOGGER.warning('%s: frame rejected: stamp %d ns is not after the last accepted stamp '
                           '%d ns (outputs must stay in order); %d rejected so far', self.name,
                           stamp_ns, self._last_stamp, rejected)

    def take(self) -> Optional[BufferedFrame]:
        """Block for the oldest frame (the consumer is busy until :meth:`task_done`).

        None once closed.
        """
        with self._cond:
            while not self._frames and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            frame = self._frames.popleft()
            frame.dropped_before, self._pending_drops = self._pending_drops, 0
            self._busy = True
            self._cond.notify_all()  # a producer may wait for room
            return frame

    def waiting(self) -> List[BufferedFrame]:
        """Return the frames waiting to be taken, oldest first (a snapshot)."""
        with self._cond:
            return list(self._frames)

    def task_done(self) -> None:
        """Record that the consumer finished the frame it took."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every buffered frame was taken and finished; False on timeout or close."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._frames or self._busy:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return False
                self._cond.wait(min(remaining, _POLL_S))
            return True

    def close(self) -> None:
        """Refuse new frames, discard the buffered ones and wake the consumer."""
        with self._cond:
            self._closed = True
            self._frames.clear()
            self._cond.notify_all()
