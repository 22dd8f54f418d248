"""evs_ros.training: training data from the pipeline's own propagation, losses, ``evs train``.

ICNet trains on labelled crops with cascade label guidance; the Refiner trains for any frozen
network on (keyframe, later frame) pairs propagated by :mod:`evs_ros.pipeline.state` (paper §3.5,
§4.3.2), from labelled datasets and unlabelled video with the network itself as teacher. Torch is
imported by the submodules.
"""

__all__ = ['TARGETS', 'TrainConfig', 'train_icnet', 'train_refiner']


def __getattr__(name):
    """Import the training entry points on first use (PEP 562)."""
    if name == 'TARGETS':
        from evs_ros.training.data import TARGETS
        return TARGETS
    if name in __all__:
        from evs_ros.training import trainer
        return getattr(trainer, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
