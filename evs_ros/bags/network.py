"""The per-frame labeller of a bag: the network of ``config.model`` in an EvsPipeline.

``evs bag`` builds one per run; ``evs fleet`` workers keep the loaded network for the life of
the worker process (:func:`cached_models`) and give every chunk a fresh pipeline, so that a
chunk's first frame is a keyframe.
"""

import os
import sys
from dataclasses import replace
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from evs_ros.config import EvsConfig, ModelConfig

_LOADED: Dict[Tuple[ModelConfig, bool], tuple] = {}


class PipelineLabeller:
    """``(image_bgr, stamp_ns) -> (labels, mask, keyframe)`` over one EvsPipeline.

    Attributes:
        colorize: labels uint8 (H, W) -> RGB uint8 (H, W, 3) in the network's palette.
    """

    def __init__(self, config: EvsConfig, model, refiner):
        from evs_ros.data.classes import visualizer_for_model
        from evs_ros.pipeline.pipeline import EvsPipeline
        self._pipeline = EvsPipeline(config, model, refiner)
        self.network = network_name(config, model)
        self.colorize: Callable[[np.ndarray], np.ndarray] = \
            visualizer_for_model(config, model).colorize

    def __call__(self, image_bgr: np.ndarray, stamp_ns: int):
        result = self._pipeline.process(image_bgr, stamp_ns)
        return result.labels, result.mask, bool(result.info.keyframe)


def load_labeller(config: EvsConfig, cache: bool = False) -> PipelineLabeller:
    """Return a labeller with a fresh state; ``cache``: reuse this process's loaded network."""
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
    """Describe what this process loaded for ``config.model``.

    The SPEC that ran (``auto`` resolved), the model's class and its class count, so that workers
    whose caches differ are told apart.
    """
    spec = getattr(model, 'backend_spec', None) or config.model.backend
    return f'{spec} ({type(model).__name__}, {getattr(model, "num_classes", "?")} classes)'


def fix_backend(config: EvsConfig, cache_root: Optional[str] = None) -> EvsConfig:
    """Replace ``model.backend: auto`` by the network it picks here; other SPECs unchanged.

    It picks from the caches, or from the caches under ``cache_root`` (a shipped weights folder),
    so that every process of a run, and the settings hash, name the same network.
    """
    from evs_ros.models.loading import AUTO, auto_backend
    if config.model.backend != AUTO:
        return config
    names = ('XDG_CACHE_HOME', 'HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE')
    saved = {name: os.environ.get(name) for name in names}
    try:
        if cache_root:
            for name in names:
                os.environ.pop(name, None)
            os.environ['XDG_CACHE_HOME'] = str(cache_root)
            os.environ['HF_HOME'] = os.path.join(str(cache_root), 'huggingface')
        chosen = auto_backend()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return replace(config, model=replace(config.model, backend=chosen))


def apply_threads(config: EvsConfig) -> None:
    """``config.runtime`` thread counts for this process (OpenCV; torch once imported)."""
    import cv2
    cv2.setNumThreads(config.runtime.flow_threads)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(config.runtime.inference_threads)
