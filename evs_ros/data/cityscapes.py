"""Reader and writer of the Cityscapes on-disk layout (paper §4.1 evaluates on Cityscapes).

Layout (``root`` = the dataset root)::

    leftImg8bit_sequence/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelIds.png
    gtFine/{split}/{city}/{city}_{seq:06d}_{frame:06d}_gtFine_labelTrainIds.png
    flow/{split}/{city}/{city}_{seq:06d}_{frame:06d}_flow.npz        (synthetic only)

Real Cityscapes snippets have 30 frames with ground truth only on the 20th (index 19, "the
annotated frame"); the synthetic benchmark writes ground truth (and optionally exact flow) for
every frame. Real Cityscapes frame numbers are absolute (e.g. 000275..000304 around the annotated
000294) and one (city, seq) can hold several snippets; a snippet here is a run of consecutive
frame numbers sharing (city, seq).
"""

import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

import cv2
import numpy as np

from evs_ros.data.labels import label_ids_to_train_ids, train_ids_to_label_ids

ANNOTATED_INDEX = 19
_IMAGE_RE = re.compile(r'^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$')


@dataclass
class Snippet:
    """One video snippet; dict keys are frame indices inside the snippet (0-based)."""

    city: str
    seq: int
    frames: List[str]
    labels: Dict[int, str] = field(default_factory=dict)
    flows: Dict[int, str] = field(default_factory=dict)
    frame_numbers: List[int] = field(default_factory=list)

    @property
    def annotated_index(self) -> int:
        """Index of "the" annotated frame (Cityscapes: 19, the 20th of 30).

        19 when that frame is labelled (or nothing is, but the snippet is long enough); else the
        last labelled frame; else the last frame.
        """
        long_enough = len(self.frames) > ANNOTATED_INDEX
        if ANNOTATED_INDEX in self.labels or (not self.labels and long_enough):
            return ANNOTATED_INDEX
        return max(self.labels) if self.labels else len(self.frames) - 1


def _stem(city: str, seq: int, frame: int) -> str:
    return f'{city}_{seq:06d}_{frame:06d}'


def list_snippets(root: str, split: str) -> List[Snippet]:
    """Find all snippets of ``split`` under ``root`` (sorted by city, seq)."""
    image_dir = os.path.join(root, 'leftImg8bit_sequence', split)
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f'{image_dir} not found: expected a Cityscapes-layout dataset '
                                f'(leftImg8bit_sequence/{split}/<city>/...)')
    groups: Dict[tuple, Dict[int, str]] = {}
    for city in sorted(os.listdir(image_dir)):
        city_dir = os.path.join(image_dir, city)
        for name in sorted(os.listdir(city_dir)) if os.path.isdir(city_dir) else []:
            match = _IMAGE_RE.match(name)
            if match:
                key = (match['city'], int(match['seq']))
                groups.setdefault(key, {})[int(match['frame'])] = os.path.join(city_dir, name)
    return [_make_snippet(root, split, city, seq, {n: frames[n] for n in run})
            for (city, seq), frames in sorted(groups.items())
            for run in _consecutive_runs(sorted(frames))]


def _consecutive_runs(numbers: List[int]) -> List[List[int]]:
    runs = [[numbers[0]]]
    for number in numbers[1:]:
        if number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


def _make_snippet(root, split, city, seq, frames_by_number) -> Snippet:
    numbers = sorted(frames_by_number)
    snippet = Snippet(city=city, seq=seq, frames=[frames_by_number[n] for n in numbers],
                      frame_numbers=numbers)
    gt_dir = os.path.join(root, 'gtFine', split, city)
    flow_dir = os.path.join(root, 'flow', split, city)
    for index, number in enumerate(numbers):
        stem = _stem(city, seq, number)
        for suffix in ('_gtFine_labelTrainIds.png', '_gtFine_labelIds.png'):
            path = os.path.join(gt_dir, stem + suffix)
            if os.path.isfile(path):
                snippet.labels[index] = path
                break
        flow_path = os.path.join(flow_dir, stem + '_flow.npz')
        if os.path.isfile(flow_path):
            snippet.flows[index] = flow_path
    return snippet


def read_image(path: str) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise IOError(f'cannot read image {path}')
    return image


def read_labels(path: str) -> np.ndarray:
    """Read a label PNG as uint8 (H, W) trainIds (labelIds files are converted)."""
    labels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise IOError(f'cannot read label image {path}')
    if labels.ndim == 3:
        raise ValueError(f'{path} is a colour image; expected single-channel label ids')
    labels = labels.astype(np.uint8)
    if path.endswith('_labelIds.png'):
        return label_ids_to_train_ids(labels)
    return labels


def read_flow(path: str) -> Dict[str, np.ndarray]:
    """Read a flow file: ``{'flow_cur_to_prev': float32 (H, W, 2), 'valid': bool (H, W)}``."""
    with np.load(path) as data:
        return {'flow_cur_to_prev': data['flow_cur_to_prev'].astype(np.float32),
                'valid': data['valid'].astype(bool)}


def write_snippet(root: str, split: str, city: str, seq: int, frames_iter: Iterable,
                  write_flow: bool = False) -> Snippet:
    """Write frames and return the written Snippet.

    Frames are objects with ``image_bgr``, ``labels`` trainIds and, for ``write_flow``,
    ``flow_cur_to_prev`` and ``valid``; ``labels`` may be None.
    """
    dirs = {kind: os.path.join(root, kind, split, city)
            for kind in ('leftImg8bit_sequence', 'gtFine', 'flow')}
    os.makedirs(dirs['leftImg8bit_sequence'], exist_ok=True)
    frames = {}
    for index, frame in enumerate(frames_iter):
        stem = _stem(city, seq, index)
        frames[index] = os.path.join(dirs['leftImg8bit_sequence'], stem + '_leftImg8bit.png')
        _imwrite(frames[index], frame.image_bgr)
        if getattr(frame, 'labels', None) is not None:
            os.makedirs(dirs['gtFine'], exist_ok=True)
            base = os.path.join(dirs['gtFine'], stem + '_gtFine_')
            _imwrite(base + 'labelTrainIds.png', frame.labels)
            _imwrite(base + 'labelIds.png', train_ids_to_label_ids(frame.labels))
        if write_flow and index > 0:
            os.makedirs(dirs['flow'], exist_ok=True)
            np.savez_compressed(os.path.join(dirs['flow'], stem + '_flow.npz'),
                                flow_cur_to_prev=frame.flow_cur_to_prev.astype(np.float16),
                                valid=frame.valid)
    return _make_snippet(root, split, city, seq, frames)


def _imwrite(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise IOError(f'cannot write {path}')
