"""Video file input and mp4 output (OpenCV), for offline runs and overlays."""

import os
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np


def iter_video(path: str, max_frames: Optional[int] = None,
               resize: Optional[Tuple[int, int]] = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video file as BGR uint8 (H, W, 3).

    Args:
        path: any file OpenCV's VideoCapture can decode.
        max_frames: stop after this many frames (None = all).
        resize: optional (width, height) in pixels (INTER_AREA).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'video file {path} does not exist')
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise IOError(f'cannot open video {path}: unsupported container or codec for OpenCV')
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                if count == 0:
                    raise IOError(f'cannot decode any frame of {path}')
                break
            if resize is not None:
                frame = cv2.resize(frame, tuple(resize), interpolation=cv2.INTER_AREA)
            yield frame
            count += 1
    finally:
        capture.release()


VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.mov')


def list_videos(paths: str, prefix: str = 'clips') -> List[str]:
    """List the video files of a comma list of files or folders of them (``clips:PATHS``).

    Raises:
        FileNotFoundError: a path does not exist or a folder holds no video (the message starts
            with ``prefix:PATH``).
    """
    found = []
    for path in (item.strip() for item in paths.split(',') if item.strip()):
        if os.path.isdir(path):
            videos = sorted(os.path.join(path, name) for name in os.listdir(path)
                            if name.lower().endswith(VIDEO_EXTENSIONS))
            if not videos:
                raise FileNotFoundError(f'{prefix}:{path} holds no video '
                                        f'({", ".join(VIDEO_EXTENSIONS)})')
            found += videos
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f'{prefix}:{path} does not exist')
    return found


def video_fps(path: str, default: float = 17.0) -> float:
    """Frame rate stored in a video file (``default`` when the container has none)."""
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return float(fps) if fps and fps > 0 else default


class VideoWriter:
    """mp4 (mp4v) writer opened lazily on the first frame; use as a context manager."""

    def __init__(self, path: str, fps: float = 17.0, fourcc: str = 'mp4v'):
        self.path = path
        self.fps = float(fps)
        self.fourcc = fourcc
        self._writer = None
        self.frames_written = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one BGR uint8 (H, W, 3) frame; all frames must have the same size."""
        if self._writer is None:
            height, width = frame_bgr.shape[:2]
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, (width, height))
            if not self._writer.isOpened():
                raise IOError(f'cannot open {self.path} for writing with fourcc {self.fourcc}')
        self._writer.write(np.ascontiguousarray(frame_bgr, dtype=np.uint8))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
