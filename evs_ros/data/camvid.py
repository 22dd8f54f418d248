"""CamVid (Brostow et al., PRL 2009): real street video labelled on every frame, 11 classes.

Layout (the SegNet tutorial's, ``root`` = the folder holding the splits)::

    {split}/{seq}_{frame:05d}.png        RGB frames, e.g. val/0016E5_07959.png
    {split}annot/{seq}_{frame:05d}.png   uint8 class indices 0..10, 11 = void

Frame numbers count the camera's 30 Hz frames; the labelled frames of a split are every 2nd one
(15 Hz). A *sequence* here is a run of consecutive labelled frames of one camera sequence: the
val split is one drive, ``0016E5`` 07959..08159, 101 frames, every one labelled.

Cityscapes networks are scored on CamVid through one table, :data:`TRAIN_ID_TO_CAMVID`: road ->
Road; sidewalk -> Pavement; building, wall -> Building; fence -> Fence; pole -> Pole; traffic
light, traffic sign -> SignSymbol; vegetation, terrain -> Tree; sky -> Sky; person ->
Pedestrian; rider, motorcycle, bicycle -> Bicyclist; car, truck, bus, train -> Car. Caveats:
CamVid's Bicyclist is the rider AND the bicycle (Cityscapes splits them), its Tree includes low
vegetation and grass (Cityscapes terrain), and its Building includes walls; void pixels are
ignored.
"""

import os
import re
from dataclasses import dataclass
from typing import List

import cv2
import numpy as np

from evs_ros.data.labels import IGNORE, TRAIN_ID

CAMVID_CLASSES = ('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                  'Car', 'Pedestrian', 'Bicyclist')
CAMVID_VOID = 11
FRAME_STEP = 2
"""Frame-number step between consecutive labelled frames (30 Hz camera, 15 Hz labels)."""
LABEL_HZ = 15.0
_NAME_RE = re.compile(r'^(?P<seq>[0-9A-Za-z]+)_(?P<frame>\d+)\.png$')

_CITYSCAPES_TO_CAMVID = {
    'road': 'Road', 'sidewalk': 'Pavement', 'building': 'Building', 'wall': 'Building',
    'fence': 'Fence', 'pole': 'Pole', 'traffic light': 'SignSymbol',
    'traffic sign': 'SignSymbol', 'vegetation': 'Tree', 'terrain': 'Tree', 'sky': 'Sky',
    'person': 'Pedestrian', 'rider': 'Bicyclist', 'motorcycle': 'Bicyclist',
    'bicycle': 'Bicyclist', 'car': 'Car', 'truck': 'Car', 'bus': 'Car', 'train': 'Car',
}


def _train_id_to_camvid() -> np.ndarray:
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for cityscapes, camvid in _CITYSCAPES_TO_CAMVID.items():
        lut[TRAIN_ID[cityscapes]] = CAMVID_CLASSES.index(camvid)
    return lut


TRAIN_ID_TO_CAMVID = _train_id_to_camvid()
"""uint8 (256,) lookup: Cityscapes trainId -> CamVid class index (255 = no CamVid class)."""


@dataclass
class CamvidSequence:
    """Consecutive labelled frames of one camera sequence.

    Attributes:
        name: ``{seq}_{first frame number}``.
        images: frame paths in time order.
        labels: label paths, one per frame.
    """

    name: str
    images: List[str]
    labels: List[str]


def list_sequences(root: str, split: str = 'val') -> List[CamvidSequence]:
    """List the labelled sequences of ``split`` under ``root`` (by camera sequence, frame).

    Raises:
        FileNotFoundError: ``root/split`` or ``root/{split}annot`` is missing, naming the layout.
    """
    images_dir = os.path.join(root, split)
    labels_dir = os.path.join(root, f'{split}annot')
    for folder in (images_dir, labels_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'{folder} does not exist: a CamVid root holds {split}/ and '
                                    f'{split}annot/ (the SegNet tutorial layout)')
    frames = {}
    for name in os.listdir(images_dir):
        match = _NAME_RE.match(name)
        if match and os.path.isfile(os.path.join(labels_dir, name)):
            frames.setdefault(match['seq'], []).append((int(match['frame']), name))
    sequences = []
    for seq in sorted(frames):
        for run in _consecutive(sorted(frames[seq])):
            sequences.append(CamvidSequence(
                name=f'{seq}_{run[0][0]:05d}',
                images=[os.path.join(images_dir, name) for _, name in run],
                labels=[os.path.join(labels_dir, name) for _, name in run]))
    return sequences


def _consecutive(numbered):
    """Split (number, name) pairs into runs whose numbers step by exactly FRAME_STEP."""
    runs = []
    for number, name in numbered:
        if runs and number - runs[-1][-1][0] == FRAME_STEP:
            runs[-1].append((number, name))
        else:
            runs.append([(number, name)])
    return runs


def read_camvid_labels(path: str) -> np.ndarray:
    """uint8 (H, W) CamVid class indices 0..10, void -> 255 (ignored like Cityscapes')."""
    labels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise ValueError(f'{path} is not a single-channel CamVid label image')
    labels = labels.astype(np.uint8)
    labels[labels >= CAMVID_VOID] = IGNORE
    return labels


def train_ids_to_camvid(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes trainIds (uint8, any shape) -> CamVid class indices (255 where none)."""
    return TRAIN_ID_TO_CAMVID[np.asarray(train_ids, dtype=np.uint8)]
