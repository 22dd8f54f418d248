"""Time chunks of a long bag whose borders fall on the keyframe grid.

A chunk is labelled from a fresh pipeline, so its first frame is a keyframe. With a fixed
operating point the network runs on frames 0, S, 2S, ... of the whole bag; a border on a
multiple of S is a keyframe of the uninterrupted run too, and a keyframe replaces the whole
propagation state, so every frame gets exactly the labels of the uninterrupted run. With the
adaptive policy keyframes fall where IAM says; a border (on a multiple of S_max) forces one that
the uninterrupted run may not have, and the frames after it can differ until both runs meet on
a keyframe again (docs/benchmarks.md section 15 measures how much). The grid counts image
messages; a one-pass run counts the frames it could decode, so after an undecodable frame its
keyframes move by one and the chunked labels of the frames after it may differ from ``evs bag``'s
(both keep at most S frames between keyframes).
"""

import bisect
from dataclasses import dataclass
from typing import List, Optional, Sequence

from evs_ros.config import OperatingPoint
from evs_ros.pipeline.scheduler import effective_interval


@dataclass(frozen=True)
class Chunk:
    """Frames ``[first_frame, first_frame + frames)`` of a bag's image topic."""

    index: int
    first_frame: int
    frames: int
    start_ns: int
    """bag time of the first frame"""
    stop_ns: Optional[int]
    """bag time of the next chunk's first frame (exclusive); None for the last chunk"""


def keyframe_grid(op: OperatingPoint) -> int:
    """Frames between possible borders: S (S_max for the adaptive policy)."""
    return max(1, effective_interval(op))


def chunk_borders(timestamps_ns: Sequence[int], chunk_s: float, grid: int) -> List[int]:
    """First frame of each chunk.

    0, then the first frame at or after each ``chunk_s`` step whose index is a multiple of ``grid``
    and whose bag time is later than its predecessor's (so the border is a bag time that no frame
    of the previous chunk shares).

    Args:
        timestamps_ns: bag times of the image messages, in order.
        chunk_s: chunk length in seconds of bag time; <= 0 means one chunk.
        grid: borders only on multiples of this frame count (>= 1).
    """
    count = len(timestamps_ns)
    if count == 0 or chunk_s <= 0:
        return [0]
    chunk_ns = int(round(chunk_s * 1e9))
    first_ns = timestamps_ns[0]
    borders, step = [0], 1
    while True:
        index = bisect.bisect_left(timestamps_ns, first_ns + step * chunk_ns, lo=borders[-1] + 1)
        index = -(-index // grid) * grid
        while index < count and timestamps_ns[index] == timestamps_ns[index - 1]:
            index += grid
        if index >= count:
            return borders
        borders.append(index)
        step = max(step + 1, (timestamps_ns[index] - first_ns) // chunk_ns + 1)


def plan_chunks(timestamps_ns: Sequence[int], chunk_s: float, op: OperatingPoint
                ) -> List[Chunk]:
    """Return the chunks of a bag whose image messages have these bag times (see module doc)."""
    borders = chunk_borders(timestamps_ns, chunk_s, keyframe_grid(op))
    ends = borders[1:] + [len(timestamps_ns)]
    return [Chunk(index=i, first_frame=first, frames=end - first,
                  start_ns=int(timestamps_ns[first]) if timestamps_ns else 0,
                  stop_ns=int(timestamps_ns[end]) if end < len(timestamps_ns) else None)
            for i, (first, end) in enumerate(zip(borders, ends))]
