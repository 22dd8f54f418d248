"""``evs fleet --weights-dir DIR``: the network's files, shipped to every worker.

DIR is laid out like a cache root (``$XDG_CACHE_HOME``): ``evs_ros/NAME/...`` for file checkpoints
and ``huggingface/hub/models--...`` for hub networks, as ``XDG_CACHE_HOME=DIR evs weights get
NAME`` fills it, plus any file that ``model.backend`` or ``model.refiner`` names by a path
relative to DIR (``--backend icnet:my_icnet.pt``). The driver packs DIR once (:func:`pack`);
``evs fleet`` puts the archive into Ray's object store, and each worker node unpacks it once
(:func:`materialize`) into a folder named by its checksum, which then serves as the worker's
caches. Nothing is ever downloaded: workers run with ``HF_HUB_OFFLINE=1``.
"""

import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

from evs_ros.config import ModelConfig

PATH_KINDS = ('icnet', 'onnx', 'torchscript', 'hf')
"""backend SPEC kinds whose argument is a path"""
OFFLINE_ENV = {'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
"""set on every worker: the network comes from the caches or the shipped folder, never a hub"""


def pack(weights_dir: Path) -> bytes:
    """Return an uncompressed tar of ``weights_dir``'s content (files in sorted order)."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise FileNotFoundError(f'--weights-dir {weights_dir} is not a directory')
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as archive:
        for path in sorted(weights_dir.rglob('*')):
            if path.is_file():
                archive.add(path, arcname=path.relative_to(weights_dir).as_posix(),
                            recursive=False)
    return buffer.getvalue()


def materialize(fetch_archive: Callable[[], bytes], digest: str, root: Path = None) -> Path:
    """Return the folder ``<tmp>/evs_fleet_weights/<digest>``, unpacked once per machine.

    From ``fetch_archive()``, called only when the folder is not there yet.

    Concurrent workers each unpack into a temporary folder; the first rename wins and the others
    use its result.
    """
    root = Path(root or Path(tempfile.gettempdir()) / 'evs_fleet_weights')
    target = root / digest
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f'.{digest}-', dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(fetch_archive()), mode='r') as tar:
            _extract(tar, temp)
        try:
            os.rename(temp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def _extract(tar: tarfile.TarFile, destination: Path) -> None:
    for member in tar.getmembers():
        if not member.isfile() or member.name.startswith('/') or '..' in Path(member.name).parts:
            raise ValueError(f'weights archive member {member.name!r} is not a plain file')
    if hasattr(tarfile, 'data_filter'):
        tar.extractall(destination, filter='data')
    else:  # Python 3.10 before the extraction filters
        tar.extractall(destination)


def use_weights_dir(root: Path, model_config: ModelConfig) -> ModelConfig:
    """Point this process's caches at ``root`` and resolve paths of ``model_config`` in it."""
    root = Path(root)
    os.environ['XDG_CACHE_HOME'] = str(root)
    os.environ['HF_HOME'] = str(root / 'huggingface')
    for name in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'TRANSFORMERS_CACHE'):
        os.environ.pop(name, None)
    return replace(model_config, backend=_spec_in(root, model_config.backend),
                   refiner=_refiner_in(root, model_config.refiner))


def absolute_paths(model_config: ModelConfig, base: Path = None) -> ModelConfig:
    """Make the relative paths of ``model_config`` that exist here absolute.

    Workers do not share the driver's working directory.
    """
    base = Path(base or os.getcwd())
    palette = model_config.palette_file
    if palette and not os.path.isabs(palette) and (base / palette).is_file():
        palette = str(base / palette)
    return replace(model_config, backend=_spec_in(base, model_config.backend),
                   refiner=_refiner_in(base, model_config.refiner), palette_file=palette)


def _spec_in(root: Path, spec: str) -> str:
    """``kind:relative/path`` -> ``kind:root/relative/path`` when that exists."""
    kind, sep, rest = spec.partition(':')
    if sep and kind in PATH_KINDS and rest != 'default' and not os.path.isabs(rest) and \
            (root / rest).exists():
        return f'{kind}:{root / rest}'
    return spec


def _refiner_in(root: Path, refiner: str) -> str:
    if refiner not in ('', 'default') and not os.path.isabs(refiner) and \
            (root / refiner).is_file():
        return str(root / refiner)
    return refiner
