"""The per-frame labeller of a bag: the network of ``config.model`` in an EvsPipeline.

``evs bag`` builds one per run; ``evs fleet`` workers keep the loaded network for the life of
the worker process (:func:`cached_models`) and give every chunk a fresh pipeline, so that a
chunk's first frame is a keyframe.
"""

import sys
from typing import Callable, Dict, Tuple

import numpy as np

from evs_ros.config import EvsConfig, ModelConfig

_LOADED: Dict[Tuple[ModelConfig, bool], tuple] = {}


class PipelineLabeller:
    """``(image_bgr, stamp_ns) -> (labels, mask, keyframe)`` over one EvsPipeline.

    Attributes:
        colorize: labels uint8 (H, W) -> RGB uint8 (H, W, 3) in the network's palette.
    """

    def __init__(self, config: EvsConfig, model, refiner):
        from evs_ros.data.labels import Visualizer
        from evs_ros.pipeline.pipeline import EvsPipeline
        self._pipeline = EvsPipeline(config, model, refiner)
        self.network = network_name(config, model)
        self.colorize: Callable[[np.ndarray], np.ndarray] = \
            Visualizer.for_model(config, model).colorize

    def __call__(self, image_bgr: np.ndarray, stamp_ns: int):
        result = self._pipeline.process(image_bgr, stamp_ns)
        return result.labels, result.mask, bool(result.info.keyframe)


def load_labeller(config: EvsConfig, cache: bool = False) -> PipelineLabeller:
    """A labeller with a fresh state; ``cache``: reuse this process's loaded network."""
    load = cached_models if cache else _load_models
    model, refiner = load(config.model, config.operating_point.refine)
    return PipelineLabeller(config, model, refiner)


def cached_models(model_config: ModelConfig, need_refiner: bool):
    """(model, refiner) of ``config.model``, loaded once per process."""
    key = (model_config, need_refiner)
    if key not in _LOADED:
        _LOADED[key] = _load_models(model_config, need_refiner)
    return _LOADED[key]


def _load_models(model_config: ModelConfig, need_refiner: bool):
    from evs_ros.models.loading import load_models
    return load_models(model_config, need_refiner)


def network_name(config: EvsConfig, model) -> str:
    """What this process loaded for ``config.model``: the SPEC (``weights:NAME`` resolved to its
    cached checkpoint), the model's class and its class count, so that workers whose caches
    differ are told apart."""
    from evs_ros.models.loading import resolve_backend_spec
    try:
        spec = resolve_backend_spec(config.model.backend)
    except (ValueError, OSError):
        spec = config.model.backend
    return f'{spec} ({type(model).__name__}, {getattr(model, "num_classes", "?")} classes)'


def apply_threads(config: EvsConfig) -> None:
    """``config.runtime`` thread counts for this process (OpenCV; torch once imported)."""
    import cv2
    cv2.setNumThreads(config.runtime.flow_threads)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(config.runtime.inference_threads)
