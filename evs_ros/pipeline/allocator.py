"""Process settings that keep the flow worker's per-frame cost flat (paper §3.1, §4.3.1).

The flow hot path allocates a few arrays of 0.5-16 MB per frame (flow fields, warped labels and
probabilities). glibc serves blocks above its mmap threshold with fresh ``mmap`` calls and gives
them back on free, so every frame pays page faults for them again; on virtualised hosts that can
cost more than the warping itself (docs/benchmarks.md, "Design measurements"). Real-time guides
(e.g. the ROS 2 real-time programming notes) recommend the same: keep freed memory in the heap
instead of returning it to the kernel. The runtime's executables and the offline commands call
:func:`tune_allocator` once at start-up.
"""

import ctypes
import ctypes.util
import logging

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LOGGER = logging.getLogger(__name__)


def tune_allocator(mmap_threshold_bytes: int = 32 << 20,
                   trim_threshold_bytes: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (no-op elsewhere).

    Args:
        mmap_threshold_bytes: blocks below this come from the heap (glibc's ceiling is 32 MiB
            on 64-bit; a full-resolution 2048x1024 flow is 16 MiB).
        trim_threshold_bytes: free memory at the top of the heap kept before giving it back.

    Returns:
        True if both settings were applied (glibc found), else False.
    """
    name = ctypes.util.find_library('c')
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        applied = (libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes)) == 1
                   and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes)) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    if not applied:
        _LOGGER.debug('mallopt refused the allocator settings')
    return applied
