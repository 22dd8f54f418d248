"""evs_ros.pipeline: operating points, keyframe scheduling, the synchronous pipeline and the
real-time runtime (paper §3, design §3-4).

``EvsPipeline`` processes one stream synchronously (evaluation, tests); ``EvsRuntime`` /
``EvsStream`` run the same steps in a flow worker per stream plus one shared inference worker.
Heavy imports (OpenCV, the flow module) happen when the classes are first used.
"""

from evs_ros.pipeline.results import FrameInfo, FrameResult
from evs_ros.pipeline.scheduler import (
    KeyframeScheduler, effective_interval, keyframe_offset_for_eval, keyframe_pattern,
)

__all__ = [
    'EvsPipeline', 'EvsRuntime', 'EvsStream', 'FrameInfo', 'FrameResult', 'InferenceWorker',
    'KeyframeScheduler', 'effective_interval', 'keyframe_offset_for_eval', 'keyframe_pattern',
]

_LAZY = {
    'EvsPipeline': 'evs_ros.pipeline.pipeline',
    'EvsRuntime': 'evs_ros.pipeline.runtime',
    'EvsStream': 'evs_ros.pipeline.runtime',
    'InferenceWorker': 'evs_ros.pipeline.inference',
}


def __getattr__(name):
    """Import the pipeline/runtime classes on first use (PEP 562)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
