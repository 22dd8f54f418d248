"""Keyframe scheduling for an operating point (paper Table 2, §4.4.2; adaptive policy: §5).

A *keyframe* is a frame on which the segmentation network runs; every other frame is propagated
(W on) or holds the last labels (W off). Fixed mode: the network runs on frame 0 and on every
S-th frame after the last keyframe (frames 0, S, 2S, ...). Adaptive mode (the paper's future work):
a keyframe is forced when the inconsistent fraction reported by IAM, *summed over the frames
propagated since the last keyframe*, exceeds a threshold, and never later than S_max frames after
the last keyframe. The sum, not the last value: frame-to-frame inconsistency stays small (below
1 % on Cityscapes, paper Fig. 7; ours: docs/benchmarks.md, Figure 7) while the damage to the
propagated labels accumulates with every step, so a per-frame threshold either never fires or
fires on every frame.
"""

import math
from typing import List, Optional

from evs_ros.config import OperatingPoint


class KeyframeScheduler:
    """Decides, frame by frame, whether the next frame is a keyframe.

    Call :meth:`decide` once per frame, in order. A new operating point set with
    :meth:`set_operating_point` takes effect on the next call; the count of frames since the last
    keyframe is kept, so switching from S=10 to S=3 six frames after a keyframe makes the next
    frame a keyframe.
    """

    def __init__(self, op: OperatingPoint):
        self._op = op
        self._frames_since_keyframe: Optional[int] = None
        self._accumulated_fraction = 0.0

    @property
    def operating_point(self) -> OperatingPoint:
        """The operating point the next decision uses."""
        return self._op

    @property
    def frames_since_keyframe(self) -> int:
        """Frames since the last keyframe for the last decided frame (0 = it was a keyframe).

        -1 before the first decision (and after :meth:`reset`).
        """
        return -1 if self._frames_since_keyframe is None else self._frames_since_keyframe

    def set_operating_point(self, op: OperatingPoint) -> None:
        """Use ``op`` from the next decision on."""
        self._op = op

    def reset(self) -> None:
        """Forget the history: the next frame is a keyframe."""
        self._frames_since_keyframe = None

    def force_keyframe(self) -> None:
        """Make the next decision a keyframe (e.g. after a failed inference)."""
        self._frames_since_keyframe = None

    def decide(self, inconsistent_fraction: Optional[float] = None) -> bool:
        """Return True if the next frame is a keyframe, and advance by one frame.

        Args:
            inconsistent_fraction: IAM's inconsistent fraction in [0, 1] of the previous
                propagated frame; None or NaN when unknown (W off, or the previous frame was a
                keyframe). Only the adaptive policy uses it (summed since the keyframe).
        """
        if inconsistent_fraction is not None and not math.isnan(inconsistent_fraction):
            self._accumulated_fraction += inconsistent_fraction
        keyframe = self._is_keyframe()
        if keyframe:
            self._frames_since_keyframe = 0
            self._accumulated_fraction = 0.0
        else:
            self._frames_since_keyframe += 1
        return keyframe

    @property
    def accumulated_fraction(self) -> float:
        """Sum of the inconsistent fractions reported since the last keyframe."""
        return self._accumulated_fraction

    def _is_keyframe(self) -> bool:
        if self._frames_since_keyframe is None:
            return True
        next_age = self._frames_since_keyframe + 1
        if not self._op.adaptive:
            return next_age >= self._op.keyframe_interval
        if next_age >= self._op.max_keyframe_interval:
            return True
        return self._accumulated_fraction > self._op.adaptive_threshold


def keyframe_pattern(op: OperatingPoint, num_frames: int,
                     inconsistent_fractions: Optional[List[float]] = None) -> List[bool]:
    """Return the keyframe flags of the first ``num_frames`` frames under ``op``.

    ``inconsistent_fractions[i]`` is what frame i reported (used for frame i+1 in adaptive mode);
    None means unknown for every frame.
    """
    scheduler = KeyframeScheduler(op)
    pattern = []
    previous_fraction = None
    for index in range(num_frames):
        pattern.append(scheduler.decide(previous_fraction))
        if inconsistent_fractions is not None:
            previous_fraction = inconsistent_fractions[index]
    return pattern


def effective_interval(op: OperatingPoint) -> int:
    """Longest run of frames per keyframe: S, or S_max in adaptive mode."""
    return op.max_keyframe_interval if op.adaptive else op.keyframe_interval


def keyframe_offset_for_eval(op: OperatingPoint, annotated_index: int,
                             propagations: Optional[int] = None) -> int:
    """Frame index where processing starts so the annotated frame is evaluated at a known age.

    The paper (§4.1) evaluates the 20th frame of each Cityscapes snippet (index 19) "with
    different starting points before it depending on the operating points". We choose the worst
    case of each operating point: processing starts on a keyframe exactly ``S - 1`` frames before
    the annotated frame, so the annotated frame is the last propagated frame before the next
    keyframe (S - 1 propagations; S_max - 1 in adaptive mode, where adaptive keyframes can only
    make it younger). S = 1 evaluates the keyframe itself. ``propagations`` overrides the age
    (e.g. to average over ages 0..S-1). The result is clipped at 0 (the snippet's first frame).
    """
    if propagations is None:
        propagations = effective_interval(op) - 1
    if propagations < 0:
        raise ValueError(f'propagations={propagations} must be >= 0')
    return max(0, annotated_index - propagations)
