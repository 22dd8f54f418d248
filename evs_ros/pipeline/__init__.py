"""evs_ros.pipeline.

Keyframe scheduling, IAM, the one per-frame stepper, the synchronous pipeline and the real-time
runtime (paper §3, design §3-4).

``FrameStepper`` (stepper.py) is the per-frame algorithm, written once. ``EvsPipeline`` drives it
synchronously for one stream (evaluation, tests, ``evs run``/``evs bag``); ``EvsRuntime`` /
``EvsStream`` drive it from a flow worker per stream, behind a latest-frame buffer, with one shared
inference worker; ``RuntimePool`` (shared.py) shares runtimes between nodes of one process.
Heavy imports (OpenCV, the flow module) happen when the classes are first used.
"""

from evs_ros.pipeline.results import FrameInfo, FrameResult
from evs_ros.pipeline.scheduler import (
    KeyframeScheduler, effective_interval, keyframe_offset_for_eval, keyframe_pattern,
)

__all__ = [
    'EvsPipeline', 'EvsRuntime', 'EvsStream', 'FrameInfo', 'FrameResult', 'FrameStepper',
    'InferenceWorker', 'InlineInference', 'KeyframeScheduler', 'RuntimePool',
    'effective_interval', 'keyframe_offset_for_eval', 'keyframe_pattern',
]

_LAZY = {
    'EvsPipeline': 'evs_ros.pipeline.pipeline',
    'EvsRuntime': 'evs_ros.pipeline.runtime',
    'EvsStream': 'evs_ros.pipeline.runtime',
    'FrameStepper': 'evs_ros.pipeline.stepper',
    'InferenceWorker': 'evs_ros.pipeline.inference',
    'InlineInference': 'evs_ros.pipeline.inference',
    'RuntimePool': 'evs_ros.pipeline.shared',
}


def __getattr__(name):
    """Import the pipeline/runtime classes on first use (PEP 562)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
