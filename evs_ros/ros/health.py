"""The ``/diagnostics`` level of one camera and its reasons, from the camera's counters.

No ROS here (tested with a fake clock); :mod:`evs_ros.ros.cameras` publishes the result once a
second. Levels are those of ``diagnostic_msgs/DiagnosticStatus``; from the worst down:

- **STALE**: no frame arrived for ``publish.diagnostics_stale_s`` (no camera connected yet, or
  the camera stopped). Outputs cannot be judged then.
- **ERROR**: the network failed on a keyframe among the last ``publish.diagnostics_clear_frames``
  frames: labels are being propagated from an old keyframe (or are all 255 before the first).
- **WARN**: input was rejected among the last ``diagnostics_clear_frames`` frames (bad messages,
  frames smaller than the network's stride, stamps out of order), or the output rate over the
  last :data:`RATE_WINDOW_S` (once it covers :data:`MIN_RATE_SPAN_S`) is below
  ``publish.diagnostics_min_output_ratio`` of the accepted input rate (the node is overloaded
  and drops frames).
- **OK** otherwise.

ERROR and WARN clear by themselves after ``diagnostics_clear_frames`` good frames; the counts
stay in the values of the status.
"""

import collections
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

OK, WARN, ERROR, STALE = 0, 1, 2, 3
"""``diagnostic_msgs/DiagnosticStatus`` levels."""
RATE_WINDOW_S = 5.0
"""Input and output rates are averaged over this long."""
MIN_RATE_SPAN_S = 2.0
"""The output rate is judged once the rates cover this long (a camera's first keyframe makes
its first outputs wait a moment)."""


@dataclass
class Counters:
    """One camera's cumulative counts at one moment.

    Attributes:
        received: input messages received (accepted and rejected).
        rejected: of them, rejected (any cause).
        outputs: frames published.
        network_errors: keyframe or refinement runs that failed.
    """

    received: int = 0
    rejected: int = 0
    outputs: int = 0
    network_errors: int = 0


class CameraHealth:
    """The level and reasons of one camera.

    Feed it events (:meth:`frame_arrived`, :meth:`rejected`, :meth:`failed`) as they happen and
    :meth:`assess` it about once a second.

    Args:
        publish_config: ``diagnostics_stale_s``, ``diagnostics_min_output_ratio`` and
            ``diagnostics_clear_frames`` (changed at run time with :meth:`set_config`).
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, publish_config, clock: Callable[[], float] = time.monotonic):
        self.config = publish_config
        self.clock = clock
        self.started_s = clock()
        self.last_frame_s: Optional[float] = None
        self.samples = collections.deque([(self.started_s, 0, 0)])  # (time s, accepted, outputs)
        self.rejected_at: Optional[int] = None  # `received` when a rejection was last seen
        self.failed_at: Optional[int] = None  # `received` when a network error was last seen

    def set_config(self, publish_config) -> None:
        self.config = publish_config

    def frame_arrived(self) -> None:
        """Note a message (good or bad); called from the subscription callback."""
        self.last_frame_s = self.clock()

    def rejected(self, received: int) -> None:
        """Note an input refused when ``received`` messages had come in."""
        self.rejected_at = received

    def failed(self, received: int) -> None:
        """Note a network (or frame) failure when ``received`` messages had come in."""
        self.failed_at = received

    def assess(self, counters: Counters) -> Tuple[int, List[str]]:
        """(level, reasons) now; reasons is empty for OK."""
        now_s = self.clock()
        self._sample(now_s, counters)
        silent_s = now_s - (self.last_frame_s if self.last_frame_s is not None
                            else self.started_s)
        if silent_s > self.config.diagnostics_stale_s:
            what = 'no frame received yet' if self.last_frame_s is None else \
                f'no frame for {silent_s:.1f} s (camera stopped?)'
            return STALE, [what]
        level, reasons = OK, []
        window = self.config.diagnostics_clear_frames
        if self.failed_at is not None and counters.received - self.failed_at < window:
            level = ERROR
            reasons.append(f'network failed ({counters.network_errors} failed runs so far): '
                           'labels propagated from an older keyframe')
        if self.rejected_at is not None and counters.received - self.rejected_at < window:
            level = max(level, WARN)
            reasons.append(f'input rejected ({counters.rejected} so far, see log)')
        low_rate = self._low_output_rate()
        if low_rate:
            level = max(level, WARN)
            reasons.append(low_rate)
        return level, reasons

    def rates_hz(self) -> Tuple[float, float]:
        """Return the (accepted input, output) rates over the last :data:`RATE_WINDOW_S`."""
        if len(self.samples) < 2:
            return 0.0, 0.0
        (first_s, first_in, first_out), (last_s, last_in, last_out) = \
            self.samples[0], self.samples[-1]
        span_s = max(last_s - first_s, 1e-9)
        return (last_in - first_in) / span_s, (last_out - first_out) / span_s

    def _sample(self, now_s: float, counters: Counters) -> None:
        self.samples.append((now_s, counters.received - counters.rejected, counters.outputs))
        while len(self.samples) > 2 and now_s - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()

    def _low_output_rate(self) -> str:
        if self.samples[-1][0] - self.samples[0][0] < MIN_RATE_SPAN_S:
            return ''
        input_hz, output_hz = self.rates_hz()
        ratio = self.config.diagnostics_min_output_ratio
        if input_hz <= 0.0 or output_hz >= ratio * input_hz:
            return ''
        return (f'output {output_hz:.1f} Hz is below {100 * ratio:.0f} % of the input '
                f'{input_hz:.1f} Hz (overloaded: frames dropped; a faster operating point helps)')
