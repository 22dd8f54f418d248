"""evs_ros.models.

ICNet, the Refiner, Caffe weight loading and pluggable backends (paper §3.2, §3.5).

Torch is imported lazily by the submodules that need it; ``base`` (the interface) is numpy only.
"""

from evs_ros.models.base import Prediction, RefinerModel, SegmentationModel

__all__ = ['Prediction', 'RefinerModel', 'SegmentationModel', 'load_backend', 'load_refiner']


def load_backend(spec: str, device: str = 'auto', fp16: bool = False):
    """See ``evs_ros.models.backends.load_backend``."""
    from evs_ros.models.backends import load_backend as _load_backend
    return _load_backend(spec, device, fp16)


def load_refiner(spec_or_path: str, device: str = 'auto', fp16: bool = False):
    """See ``evs_ros.models.backends.load_refiner``."""
    from evs_ros.models.backends import load_refiner as _load_refiner
    return _load_refiner(spec_or_path, device, fp16)
