"""One place that turns ``config.model`` into a network and a matching Refiner.

The node, every ``evs`` command, the benchmarks and training load models through
:func:`load_models`, so the compatibility rules hold everywhere:

* the Refiner predicts the network's classes (same count and, where both are known, the same
  names in the same order);
* a Refiner trained with features takes the network's feature channels (a network without
  features still works: the Refiner then gets zeros in their place);
* ``model.refiner: default`` picks the shipped Refiner trained for the network in use: every
  Refiner checkpoint records the network it was trained for (:func:`network_record`: the sha256
  of its weights, the SPEC and a name), and ``default`` takes the shipped one
  (``evs_ros/models/weights/refiner_*.pt``) whose record has the network's sha256, so the shipped
  ICNet gets ``refiner_synth.pt`` and ESPNetv2 s=2.0 Cityscapes (whatever the SPEC that loads it:
  ``weights:espnetv2-s2-cityscapes`` or ``espnet:PATH``) its own. With any other network R acts
  as off and a warning says why (not an error). A Refiner the user names explicitly must match,
  else :class:`ModelMismatchError`;
* both run on the engine of ``model.engine`` at ``model.precision`` (:func:`use_engines`), and
  one log line names the engine and why it was chosen.

The network's scale is settled here too, once for every caller (:func:`apply_input_settings`):
the scale it was trained at (``trained_short_side``: from its catalogue entry for
``weights:NAME`` and catalogued hub ids, else the network's own attribute), the short side it
gets at D = 1 (``input_short_side``, from ``model.input_short_side``; the pipeline reads it, see
:mod:`evs_ros.pipeline.network_input`) and, with ``model.window``, sliding windows
(:class:`~evs_ros.models.sliding.SlidingWindowModel`).
"""

import glob
import hashlib
import logging
import os
import re
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from evs_ros.config import ModelConfig, window_size

LOGGER = logging.getLogger('evs_ros')
PLACEHOLDER_NAME = re.compile(r'^class_\d+$')
"""The names a network without class names gets (``class_0`` ...)."""


class ModelMismatchError(ValueError):
    """The Refiner was trained for another network (the message says how they differ)."""


AUTO = 'auto'
SHIPPED = 'icnet:default'


def resolve_backend_spec(spec: str) -> str:
    """``weights:NAME`` -> the SPEC of the cached checkpoint.

    ``auto`` -> :func:`auto_backend`; other SPECs unchanged.
    """
    if spec == AUTO:
        spec = auto_backend()
    if spec.startswith('weights:'):
        from evs_ros.models.weights_cache import resolve_weights
        return resolve_weights(spec[len('weights:'):])
    return spec


def auto_backend() -> str:
    """``model.backend: auto``: the best real network in the cache, else the shipped ICNet.

    Real networks are tried in the order of ``AUTO_PREFERENCE`` (the catalogue's real-time
    Cityscapes networks, most accurate first); the choice is logged in one line, and falling back
    to the shipped network (trained only on synthetic streets) is a warning that says what to run.
    Nothing is downloaded.
    """
    from evs_ros.models.weights_cache import cached_path, load_catalogue
    from evs_ros.models.weights_catalogue import AUTO_PREFERENCE
    catalogue = load_catalogue()
    for name in AUTO_PREFERENCE:
        path = cached_path(catalogue[name]) if name in catalogue else None
        if path:
            LOGGER.info('model.backend auto: %s, a real Cityscapes network (cached at %s)',
                        name, path)
            return f'weights:{name}'
    LOGGER.warning('model.backend auto: no real network in the cache, so the shipped ICNet runs; '
                   'it knows only synthetic streets: for real cameras run `evs weights get %s` '
                   '(3.4 MB, once, on a connected machine)', AUTO_PREFERENCE[0])
    return SHIPPED


def describe_backend(spec: str) -> str:
    """Say what ``spec`` (as given, before resolving) runs, in words for reports and logs."""
    if spec == SHIPPED:
        return 'the shipped ICNet (trained only on synthetic streets)'
    if spec.startswith('weights:'):
        return spec[len('weights:'):]
    return spec


def load_models(model_config: ModelConfig, need_refiner: bool = True):
    """Return (SegmentationModel, RefinerModel or None) for ``model_config``.

    The network gets two attributes for reports: ``backend_spec`` (the SPEC that ran, ``auto``
    resolved) and ``description`` (it in words).

    Args:
        model_config: ``config.model`` (backend SPEC, refiner, device, fp16).
        need_refiner: False skips loading the Refiner (no operating point uses R).

    Raises:
        ValueError, FileNotFoundError, ImportError: with a one-line reason (bad SPEC, missing
            file, uncached weights, missing dependency).
        ModelMismatchError: an explicitly named Refiner does not fit the network.
    """
    from evs_ros.models.backends import load_backend
    chosen = auto_backend() if model_config.backend == AUTO else model_config.backend
    spec = resolve_backend_spec(chosen)
    model = load_backend(spec, model_config.device, model_config.fp16)
    model.backend_spec, model.description = chosen, describe_backend(chosen)
    model = apply_input_settings(model, model_config, catalogue_entry_for(chosen))
    refiner = None
    if need_refiner and model_config.refiner and getattr(model, 'labels_only', False):
        LOGGER.warning('%s gives labels, not probabilities: R (the Refiner) needs probabilities '
                       'and acts as off; W and IAM work on the labels', model_config.backend)
    elif need_refiner and model_config.refiner:
        refiner = matching_refiner(model_config, spec, model)
    use_engines(model_config, spec, model, refiner)
    return model, refiner


def matching_refiner(model_config: ModelConfig, spec: str, model):
    """Load the Refiner ``model.refiner`` names for ``model`` (loaded from ``spec``).

    ``default``: the shipped Refiner trained for this network (:func:`shipped_refiner_for`), or
    None with one warning when there is none or it does not fit (R acts as off).

    Raises:
        ModelMismatchError: a Refiner named explicitly was trained for another network.
    """
    from evs_ros.models.backends import load_refiner
    shipped = model_config.refiner == 'default'
    path = shipped_refiner_for(spec) if shipped else model_config.refiner
    if path is None:
        LOGGER.warning('the shipped Refiner does not fit %s (shipped Refiners exist for %s): R '
                       'acts as off; train one with `evs train refiner --backend %s --data '
                       'VIDEO_OR_DATASET`', model_config.backend, _shipped_names(),
                       model_config.backend)
        return None
    refiner = load_refiner(path, model_config.device, model_config.fp16)
    reason = refiner_mismatch(model, refiner)
    if reason is None:
        return refiner
    if shipped:
        LOGGER.warning('the shipped Refiner does not fit %s (%s): R acts as off; train one with '
                       '`evs train refiner --backend %s`', model_config.backend, reason,
                       model_config.backend)
        return None
    raise ModelMismatchError(f'model.refiner {model_config.refiner!r} was trained for another '
                             f'network: {reason}')


def use_engines(model_config: ModelConfig, spec: str, model, refiner=None) -> str:
    """Hand ``model`` (loaded from ``spec``) and ``refiner`` to ``model.engine``; return it.

    At ``model.precision``; logs one line naming the engine and why (plus one for a refused
    precision or a network the engine does not apply to).

    Raises:
        ImportError, ValueError: an explicitly requested engine is not installed or does not
            run on the device (one line).
    """
    from evs_ros.config import backend_kinds, split_spec
    from evs_ros.models.engines import choose_engine, choose_precision, engine_version
    from evs_ros.models.icnet import select_device
    device_type = select_device(model_config.device).type
    engine, why = choose_engine(model_config.engine, device_type)
    precision, note = choose_precision(engine, model_config.effective_precision, device_type)
    if note:
        LOGGER.warning(note)
    support = backend_kinds()[split_spec(spec)[0]].engines
    backend = getattr(model, 'backend_spec', None) or model_config.backend
    named = backend + (' and its Refiner' if refiner is not None else '')
    if engine != 'torch' and support == 'none':
        from evs_ros.models.graph import engine_name
        # Asked for explicitly: a warning; chosen by auto: what happens, said once.
        log = LOGGER.info if model_config.engine == 'auto' else LOGGER.warning
        log('model.engine %s does not apply to %s (it is not exportable: %s runs it as it is)',
            engine, model_config.backend, engine_name(model))
        named = f'the Refiner of {backend}' if refiner is not None else ''
    elif engine == 'torch' and support == 'onnx':
        LOGGER.info('%s has no torch graph: ONNX Runtime (else OpenCV DNN) runs it',
                    model_config.backend)
    else:
        _attach(model, engine, precision, device_type, model_config)
    if engine == 'torch' and precision == 'fp16' and not getattr(model, 'fp16', False):
        LOGGER.warning('model.fp16 is refused by %s on torch (its graph runs float32)',
                       model_config.backend)
    if refiner is not None and engine != 'torch':
        refiner_precision = 'fp32' if precision == 'int8' else precision
        if precision == 'int8':
            LOGGER.info('the Refiner runs fp32 on %s (int8 calibration covers the keyframe '
                        'network only)', engine)
        _attach(refiner, engine, refiner_precision, device_type, model_config)
    version = engine_version(engine)
    if named:
        LOGGER.info('engine %s%s, %s, for %s (%s)', engine, f' {version}' if version else '',
                    precision, named, why)
    return engine


def _attach(model, engine: str, precision: str, device_type: str,
            model_config: ModelConfig) -> None:
    """Swap ``model``'s torch runner for ``engine`` (an ONNX file model switches its session)."""
    from evs_ros.models.graph import use_engine
    if hasattr(model, 'use_engine'):
        model.use_engine(engine, precision)
        return
    calibration = None
    if precision == 'int8':
        from evs_ros.models.quantize import calibration_source
        calibration = calibration_source(model, model_config.calibration)
    use_engine(model, engine, precision, device_type, calibration)


CACHED_SNAPSHOT = re.compile(r'models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]')
"""A hub cache path: ``.../models--ORG--NAME/snapshots/COMMIT``."""


def catalogue_entry_for(spec: str):
    """Return the catalogue entry behind a backend spec, else None.

    Specs: ``weights:NAME``, ``hf:ORG/NAME`` (a catalogued hub id) or ``hf:`` a cached snapshot
    of one. Never raises for an unknown name (loading the backend says what is wrong).
    """
    kind, _, rest = spec.partition(':')
    if kind not in ('weights', 'hf'):
        return None
    from evs_ros.models.weights_cache import WeightsError, load_catalogue
    try:
        catalogue = load_catalogue()
    except WeightsError:
        return None
    if kind == 'weights':
        return catalogue.get(rest)
    cached = CACHED_SNAPSHOT.search(rest)
    hub_id = f'{cached.group(1)}/{cached.group(2)}' if cached else rest
    return next((entry for entry in catalogue.values()
                 if entry.kind == 'hub' and entry.source == hub_id), None)


def apply_input_settings(model, model_config: ModelConfig, entry=None):
    """Return the network with its scale settled (see the module docstring).

    Sets ``trained_short_side`` (when the catalogue ``entry`` knows it) and ``input_short_side``
    (None = the camera's size) on ``model``; wraps it in sliding windows for ``model.window``.
    """
    trained = int(getattr(entry, 'trained_short_side', 0) or 0)
    if trained:
        model.trained_short_side = trained
    trained = int(getattr(model, 'trained_short_side', 0) or 0) or None
    wanted = model_config.input_short_side
    model.input_short_side = trained if wanted == 0 else (None if wanted < 0 else int(wanted))
    if wanted == 0 and trained is None:
        LOGGER.info("%s: training scale unknown: the network sees frames at the camera's size "
                    'times D (set model.input_short_side to choose)', model_config.backend)
    window_hw = _window_hw(model_config, entry)
    if window_hw is None:
        return model
    from evs_ros.models.sliding import SlidingWindowModel
    return SlidingWindowModel(model, window_hw)


def _window_hw(model_config: ModelConfig, entry) -> Optional[Tuple[int, int]]:
    if model_config.window != 'native':
        return window_size(model_config.window) if model_config.window else None
    published = getattr(entry, 'window', '') or ''
    if not published:
        LOGGER.info('%s: no sliding windows in its published evaluation: model.window native '
                    'runs the whole frame', model_config.backend)
    return window_size(published) if published else None


FILE_KINDS = ('icnet', 'espnet', 'onnx', 'torchscript', 'tflite')
"""Backend kinds whose SPEC names one weights file (its sha256 identifies the network)."""
HF_WEIGHT_PATTERNS = ('*.safetensors', '*.bin')


def weights_files(resolved_spec: str) -> List[str]:
    """List the files that hold the weights of a resolved SPEC (no ``auto`` / ``weights:``).

    The file of file backends (``icnet:default``: the shipped ICNet), the weight files of an
    ``hf:`` folder; [] for ``python:`` networks, hub ids and missing files.
    """
    kind, _, rest = resolved_spec.partition(':')
    if kind == 'icnet' and rest == 'default':
        from evs_ros.models.backends import DEFAULT_ICNET
        rest = DEFAULT_ICNET
    if kind in FILE_KINDS:
        return [rest] if os.path.isfile(rest) else []
    if kind == 'hf' and os.path.isdir(rest):
        return sorted(path for pattern in HF_WEIGHT_PATTERNS
                      for path in glob.glob(os.path.join(glob.escape(rest), pattern)))
    return []


def weights_sha256(resolved_spec: str) -> str:
    """Return the sha256 (hex) of the network's weights ('' when the SPEC names no weights file).

    The files of :func:`weights_files`; several are hashed in order.
    """
    paths = weights_files(resolved_spec)
    if len(paths) == 1:
        return _file_sha256(*_file_key(paths[0]))
    if not paths:
        return ''
    digest = hashlib.sha256()
    for path in paths:
        digest.update(_file_sha256(*_file_key(path)).encode())
    return digest.hexdigest()


def _file_key(path: str) -> Tuple[str, int, int]:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered per (path, size, mtime) (a changed file is hashed again)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def network_record(spec: str) -> Dict[str, str]:
    """Describe the network a Refiner is trained for (checkpoint ``meta['network']``).

    ``sha256`` of its weights ('' when they are not a file: ``python:``), the ``spec`` it was
    loaded with and its ``name`` (catalogue name, ``the shipped ICNet`` or the SPEC).
    """
    chosen = auto_backend() if spec == AUTO else spec
    digest = weights_sha256(resolve_backend_spec(chosen))
    return {'sha256': digest, 'spec': chosen, 'name': network_name(chosen, digest)}


def network_name(spec: str, digest: str) -> str:
    """Name the network for messages.

    The catalogue entry with this sha256, the shipped ICNet, or the SPEC.
    """
    if spec == SHIPPED or (digest and digest == weights_sha256(SHIPPED)):
        return 'the shipped ICNet'
    if digest:
        from evs_ros.models.weights_cache import load_catalogue
        for entry in load_catalogue().values():
            if entry.sha256 == digest:
                return entry.name
    return describe_backend(spec)


def shipped_refiners() -> List[Tuple[str, Dict[str, str]]]:
    """List (path, network record) of every shipped Refiner, by file name.

    The shipped Refiners are ``evs_ros/models/weights/refiner_*.pt``.
    """
    from evs_ros.models.backends import WEIGHTS_DIR
    from evs_ros.models.checkpoint import load_checkpoint
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(WEIGHTS_DIR), 'refiner_*.pt'))):
        meta = load_checkpoint(path, expected_arch='refiner').get('meta') or {}
        found.append((path, dict(meta.get('network') or {})))
    return found


def shipped_refiner_for(resolved_spec: str) -> Optional[str]:
    """Return the shipped Refiner trained for the network of ``resolved_spec``, or None.

    The Refiner's network record must have the same weights sha256.
    """
    digest = weights_sha256(resolved_spec)
    if not digest:
        return None
    return next((path for path, record in shipped_refiners()
                 if record.get('sha256') == digest), None)


def _shipped_names() -> str:
    names = [record.get('name') or os.path.basename(path) for path, record in shipped_refiners()]
    return ', '.join(names) if names else 'no network'


def refiner_mismatch(model, refiner) -> Optional[str]:
    """Why ``refiner`` does not fit ``model``, or None when it does."""
    if int(refiner.num_classes) != int(model.num_classes):
        return (f'it predicts {refiner.num_classes} classes, the network '
                f'{model.num_classes}')
    names = _names_mismatch(getattr(model, 'class_names', None),
                            getattr(refiner, 'class_names', None))
    if names:
        return names
    wanted = int(getattr(refiner, 'feature_channels', 0) or 0)
    given = int(getattr(model, 'feature_channels', 0) or 0)
    if wanted and given and wanted != given:
        return f'it takes {wanted} feature channels, the network gives {given}'
    return None


def _names_mismatch(model_names: Optional[Sequence[str]],
                    refiner_names: Optional[Sequence[str]]) -> Optional[str]:
    if not model_names or not refiner_names:
        return None
    if any(PLACEHOLDER_NAME.match(str(name)) for name in list(model_names) + list(refiner_names)):
        return None  # generated placeholder names (class_<i>): nothing to compare
    model_names = [_canonical(name) for name in model_names]
    refiner_names = [_canonical(name) for name in refiner_names]
    if model_names == refiner_names:
        return None
    differ = next(i for i, (a, b) in enumerate(zip(model_names, refiner_names)) if a != b)
    return (f'class {differ} is {refiner_names[differ]!r} for the Refiner and '
            f'{model_names[differ]!r} for the network')


def _canonical(name: str) -> str:
    return str(name).strip().lower().replace('_', ' ')
