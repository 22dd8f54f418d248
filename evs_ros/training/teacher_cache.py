"""The teacher network's predictions of training frames, computed once and kept on disk.

Refiner training needs the frozen network's prediction on every keyframe and, with teacher
targets, on every target frame; over several epochs each frame is both many times. On a CPU the
network costs seconds per frame and everything else of a training step well under one, so
predictions are stored the first time (float16 probabilities and features, one ``.npz`` per frame
and sample size) and read back afterwards.

Layout: ``<cache_dir>/teacher/<network key>/<H>x<W>/<frame key>.npz``; the network key is the
sha256 of its weights (:func:`evs_ros.models.loading.network_record`), the frame key changes when
the frame's file changes (:func:`evs_ros.training.sources.file_key`). Deleting the folder is safe.
"""

import io
import os
from typing import Optional, Tuple

import numpy as np

from evs_ros.models.base import Prediction
from evs_ros.training.sources import file_key


class TeacherCache:
    """``predict(frame_path, image)`` of the teacher, cached per (frame file, sample size).

    Args:
        teacher: the frozen ``SegmentationModel``.
        directory: the cache root (``--cache``), or '' to run the teacher every time.
        network_key: identifies the teacher's weights ('' = do not cache: unknown network).
    """

    def __init__(self, teacher, directory: str = '', network_key: str = ''):
        self.teacher = teacher
        self.directory = (os.path.join(directory, 'teacher', network_key[:24])
                          if directory and network_key else '')
        self.hits = self.misses = 0

    def path_for(self, frame_path: str, size_hw: Tuple[int, int]) -> Optional[str]:
        """Return the cache file of ``frame_path`` at ``size_hw``, or None without a cache."""
        if not self.directory:
            return None
        return os.path.join(self.directory, f'{size_hw[0]}x{size_hw[1]}',
                            file_key(frame_path) + '.npz')

    def predict(self, frame_path: str, image_bgr: np.ndarray) -> Prediction:
        """Return the teacher's Prediction of ``image_bgr``.

        ``image_bgr`` is uint8 (H, W, 3): ``frame_path`` fitted to the sample size. Cached ones
        come back float32 from float16, also the first time, so every epoch sees the same values.
        """
        path = self.path_for(frame_path, image_bgr.shape[:2])
        if path and os.path.isfile(path):
            self.hits += 1
            with np.load(path) as stored:
                features = stored['features'] if stored['features'].size else None
                return Prediction(probs=stored['probs'].astype(np.float32),
                                  features=None if features is None else
                                  features.astype(np.float32))
        self.misses += 1
        prediction = self.teacher.predict(image_bgr)
        if not path:
            return prediction
        probs, features = _half(prediction)
        _save(path, probs, features)
        return Prediction(probs=probs.astype(np.float32),
                          features=None if features is None else features.astype(np.float32))


def _half(prediction: Prediction):
    """Return float16 copies of the probabilities and features.

    That is what the cache holds: the first epoch sees exactly what later epochs read back.
    """
    features = prediction.features
    return (np.asarray(prediction.probs, np.float16),
            None if features is None else np.asarray(features, np.float16))


def _save(path: str, probs: np.ndarray, features: Optional[np.ndarray]) -> None:
    """Write the arrays (atomic: a complete file or none)."""
    buffer = io.BytesIO()
    np.savez(buffer, probs=probs,
             features=np.zeros((0,), np.float16) if features is None else features)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp_path = f'{path}.{os.getpid()}.tmp'
    with open(tmp_path, 'wb') as stream:
        stream.write(buffer.getvalue())
    os.replace(tmp_path, path)
