"""Where engine graphs live on disk, how they are named, and how they are written.

``$XDG_CACHE_HOME/evs_ros/engines/`` (default ``~/.cache/evs_ros/engines``) holds one folder per
network graph and weights: ``<graph>-<sha256 of the weights and the network's code, 16 hex>/``
(:func:`state_hash`). Inside, one entry per input
shape and what built it:

- ``<shape>-torch<version>-opset<N>.onnx``: the ONNX export (OpenVINO and ONNX Runtime read it;
  it does not depend on their versions);
- ``<shape>-<engine><version>-<precision>[-<extra>].<ext>``: what an engine built from it (a
  TensorRT plan, an OpenVINO int8 model), keyed by the engine's version and the precision.

``<shape>`` is the input shapes joined, e.g. ``1x3x1025x2049`` (``_`` between inputs). Every file
is written under a temporary name in the same folder and renamed into place (one atomic
``os.replace``), so a killed export never leaves a half-written entry; the temporaries of dead
processes are removed by the next write (:func:`sweep_temporaries`).
"""

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from typing import Iterator, List, Sequence, Tuple

TEMP_MARK = '.tmp-'
"""Temporary names are ``<final name>.tmp-<pid>-<random>``."""


def engines_dir() -> str:
    """``$XDG_CACHE_HOME/evs_ros/engines`` (default ``~/.cache/evs_ros/engines``)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'evs_ros', 'engines')


def state_hash(module) -> str:
    """Return the sha256 (hex) of a torch module's state and of its classes' source files.

    The state is names, dtypes, shapes and values: the key of its cache entries, whatever file
    the weights came from; a change of the network's code (a new evs_ros, transformers) is a new
    key.
    """
    digest = hashlib.sha256(type(module).__name__.encode())
    for code in sorted(_file_digest(path) for path in _source_files(module)):
        digest.update(code.encode())  # contents only: the same code anywhere, the same key
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to('cpu')
        if tensor.is_floating_point():
            tensor = tensor.float()
        digest.update(f'{name}:{tuple(tensor.shape)}:{tensor.dtype};'.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _source_files(module) -> set:
    """Return the Python files that define the classes of ``module`` and its submodules.

    Their module-level functions live there too.
    """
    import inspect
    files = set()
    for item in module.modules():
        try:
            path = inspect.getsourcefile(type(item))
        except TypeError:  # builtin / compiled
            continue
        if path and os.path.isfile(path):
            files.add(path)
    return files


_FILE_DIGESTS: dict = {}


def _file_digest(path: str) -> str:
    if path not in _FILE_DIGESTS:
        _FILE_DIGESTS[path] = file_hash(path)
    return _FILE_DIGESTS[path]


def file_hash(path: str) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def shape_key(shapes: Sequence[Sequence[int]]) -> str:
    """``[(1, 3, 513, 1025)]`` -> ``'1x3x513x1025'`` (``_`` between inputs)."""
    return '_'.join('x'.join(str(int(dim)) for dim in shape) for shape in shapes)


def parse_shape_key(key: str) -> List[Tuple[int, ...]]:
    """Inverse of :func:`shape_key`; ValueError for anything else."""
    shapes = [tuple(int(dim) for dim in part.split('x')) for part in key.split('_')]
    if not shapes or not all(shapes):
        raise ValueError(f'not a shape key: {key!r}')
    return shapes


def graph_dir(graph_name: str, weights_sha256: str, root: str = '') -> str:
    """Return the folder of one graph's entries (not created)."""
    return os.path.join(root or engines_dir(), f'{graph_name}-{weights_sha256[:16]}')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(folder: str) -> List[str]:
    """Remove the temporaries that processes no longer alive left in ``folder`` (a killed export).

    Returns their names.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if TEMP_MARK not in name:
            continue
        pid_text = name.rsplit(TEMP_MARK, 1)[1].split('-', 1)[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if pid is not None and (pid == os.getpid() or _pid_alive(pid)):
            continue  # still being written
        path = os.path.join(folder, name)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)
        removed.append(name)
    return removed


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(final_path: str) -> Iterator[str]:
    """Yield a temporary path next to ``final_path``.

    Rename it into place when the block ends without an exception, remove it otherwise. The writer
    may make it a file or a folder.
    """
    folder = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(folder, exist_ok=True)
    sweep_temporaries(folder)
    temporary = f'{final_path}{TEMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        yield temporary
        if os.path.isdir(temporary):
            if os.path.isdir(final_path):  # another process won the race: keep theirs
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                os.rename(temporary, final_path)
        else:
            os.replace(temporary, final_path)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.exists(temporary):
            _remove(temporary)


def touch(path: str) -> None:
    """Mark an entry as just used (warm-up builds the most recently used shapes first)."""
    with contextlib.suppress(OSError):
        now = time.time()
        os.utime(path, (now, now))


def recent_entries(folder: str, suffix: str, limit: int) -> List[str]:
    """Names of the ``limit`` most recently used entries ending in ``suffix`` (newest first)."""
    try:
        names = [name for name in os.listdir(folder)
                 if name.endswith(suffix) and TEMP_MARK not in name]
    except OSError:
        return []
    names.sort(key=lambda name: os.path.getmtime(os.path.join(folder, name)), reverse=True)
    return names[:limit]
