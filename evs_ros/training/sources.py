"""Training sequences for the Refiner from one or more ``--data`` sources.

A source is one of:

- ``ROOT``: a Cityscapes-layout dataset (real Cityscapes or ``evs synth``): the snippets of the
  split, with ground truth on the frames that have a label file.
- ``clips:PATHS``: unlabelled video, a comma list of video files or folders of them (the same
  form as ``evs eval --data clips:``). Each video is decoded once into the cache (PNG frames) and
  cut into shots where the picture jumps (:func:`shot_starts`), so a keyframe and the frame it is
  propagated to always come from one shot; edited footage (cuts between scenes) is fine.

A :class:`TrainSequence` is a run of consecutive frames without a cut.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

CLIPS = 'clips:'
CUT_MEAN_ABS_DIFF = 30.0
"""A cut between two frames: their grey thumbnails differ by more than this on average (0-255).
On bikes.mp4 its five cuts differ by 46-83 and fast motion within a shot by at most 20."""
THUMB_WIDTH = 64


@dataclass(frozen=True)
class TrainSequence:
    """Consecutive frames of one source without a cut.

    Attributes:
        name: identifier for messages (``city_seq`` or ``video#shot``).
        frames: image files in time order.
        labels: frame index -> ground-truth file (trainIds or labelIds), where there is one.
        source: the ``--data`` spec it came from.
    """

    name: str
    frames: Tuple[str, ...]
    labels: Dict[int, str] = field(default_factory=dict)
    source: str = ''


def load_sequences(specs: Sequence[str], split: str, cache_dir: str) -> List[TrainSequence]:
    """Load the sequences of every ``--data`` spec, in the order given.

    Raises:
        FileNotFoundError: a source does not exist or holds nothing to train on.
    """
    sequences = []
    for spec in specs:
        found = (clip_sequences(spec[len(CLIPS):], cache_dir) if spec.startswith(CLIPS)
                 else layout_sequences(spec, split))
        if not found:
            raise FileNotFoundError(f'--data {spec}: no frames to train on')
        sequences += found
    return sequences


def layout_sequences(root: str, split: str) -> List[TrainSequence]:
    """List the snippets of a Cityscapes-layout dataset's ``split``."""
    from evs_ros.data.cityscapes import list_snippets
    return [TrainSequence(name=f'{snippet.city}_{snippet.seq:06d}', frames=tuple(snippet.frames),
                          labels=dict(snippet.labels), source=root)
            for snippet in list_snippets(root, split)]


def clip_sequences(paths: str, cache_dir: str) -> List[TrainSequence]:
    """List the shots of every video in ``paths`` (decoded into ``cache_dir`` on first use)."""
    from evs_ros.data.video import list_videos
    sequences = []
    for video in list_videos(paths):
        frames, starts = extract_frames(video, cache_dir)
        stem = os.path.splitext(os.path.basename(video))[0]
        for shot, (start, end) in enumerate(zip(starts, starts[1:] + [len(frames)])):
            sequences.append(TrainSequence(name=f'{stem}#{shot}', frames=tuple(frames[start:end]),
                                           source=CLIPS + video))
    return sequences


def file_key(path: str) -> str:
    """Return a short key that changes when the file at ``path`` changes (path, size, mtime)."""
    stat = os.stat(path)
    text = f'{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}'
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def extract_frames(video: str, cache_dir: str) -> Tuple[List[str], List[int]]:
    """Decode ``video`` into PNG frames under ``cache_dir`` once; (frame files, shot starts).

    The folder is ``clips/<stem>-<key>`` (:func:`file_key`); ``index.json`` there is written last,
    so an interrupted extraction is redone.
    """
    from evs_ros.data.video import iter_video
    stem = os.path.splitext(os.path.basename(video))[0]
    directory = os.path.join(cache_dir, 'clips', f'{stem}-{file_key(video)}')
    index_path = os.path.join(directory, 'index.json')
    if os.path.isfile(index_path):
        with open(index_path) as stream:
            index = json.load(stream)
        return [os.path.join(directory, name) for name in index['frames']], index['shots']
    os.makedirs(directory, exist_ok=True)
    names, thumbs = [], []
    for number, frame in enumerate(iter_video(video)):
        names.append(f'{number:06d}.png')
        if not cv2.imwrite(os.path.join(directory, names[-1]), frame):
            raise IOError(f'cannot write {os.path.join(directory, names[-1])}')
        thumbs.append(_thumbnail(frame))
    shots = shot_starts(thumbs)
    with open(index_path + '.tmp', 'w') as stream:
        json.dump({'video': os.path.abspath(video), 'frames': names, 'shots': shots}, stream)
    os.replace(index_path + '.tmp', index_path)
    return [os.path.join(directory, name) for name in names], shots


def _thumbnail(frame_bgr: np.ndarray) -> np.ndarray:
    height, width = frame_bgr.shape[:2]
    size = (THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width)))
    gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def shot_starts(thumbs: Sequence[np.ndarray]) -> List[int]:
    """Return the first frame of every shot.

    0 and each frame whose grey thumbnail (float32 (h, w)) differs from the previous one by more
    than :data:`CUT_MEAN_ABS_DIFF` on average.
    """
    return [0] + [index for index in range(1, len(thumbs))
                  if float(np.abs(thumbs[index] - thumbs[index - 1]).mean()) > CUT_MEAN_ABS_DIFF]


def fit_to(image: np.ndarray, size_hw: Tuple[int, int], labels: bool = False) -> np.ndarray:
    """Resize ``image`` (aspect kept) to cover ``size_hw``, then crop its centre to ``size_hw``.

    Frames of any shape become training samples of one size without distortion; a frame with the
    sample's aspect ratio is only resized. ``labels``: nearest-neighbour (label maps).
    """
    height, width = image.shape[:2]
    want_h, want_w = size_hw
    scale = max(want_h / height, want_w / width)
    new_h, new_w = max(want_h, round(height * scale)), max(want_w, round(width * scale))
    if (new_h, new_w) != (height, width):
        interpolation = (cv2.INTER_NEAREST if labels else
                         cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - want_h) // 2, (new_w - want_w) // 2
    return np.ascontiguousarray(image[top:top + want_h, left:left + want_w])
