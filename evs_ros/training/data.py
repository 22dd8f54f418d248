"""Training samples for ICNet and the Refiner (paper §4.1).

``IcnetCrops``: labelled frames of a Cityscapes-layout dataset, random scale / crop / horizontal
flip, ICNet preprocessing.
``RefinerPairs``: (keyframe k, frame k + d) pairs from any training sequences (labelled datasets
and unlabelled video, :mod:`evs_ros.training.sources`) with a frozen network's P and F at k warped
to k + d by the pipeline's own propagation steps, exactly the inputs the Refiner sees at run time
(§3.5); the target is the ground truth or the network's own output on frame k + d.
"""

from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from evs_ros.config import FlowConfig, IamConfig
from evs_ros.data.cityscapes import list_snippets, read_image, read_labels
from evs_ros.data.labels import IGNORE
from evs_ros.flow import FlowEstimator, to_gray
from evs_ros.models.icnet import BGR_MEAN
from evs_ros.pipeline.state import PropagationState, consecutive_flows
from evs_ros.training.sources import TrainSequence, fit_to
from evs_ros.training.teacher_cache import TeacherCache

SCALE_RANGE = (0.5, 2.0)  # covers 512x256 .. 2048x1024 views of 1024x512 frames


def _to_data(image_bgr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) BGR -> float32 (3, H, W) minus ICNet's BGR means."""
    data = image_bgr.astype(np.float32) - np.asarray(BGR_MEAN, np.float32)
    return torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()  # torch RNG: seeded per DataLoader worker


def _random_crop(image: np.ndarray, labels: np.ndarray, crop_hw: Tuple[int, int]):
    """Pad (mean colour / ignore) to at least ``crop_hw`` then crop a random window."""
    crop_h, crop_w = crop_hw
    pad_h, pad_w = max(0, crop_h - image.shape[0]), max(0, crop_w - image.shape[1])
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                   value=tuple(int(round(m)) for m in BGR_MEAN))
        labels = cv2.copyMakeBorder(labels, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                    value=IGNORE)
    top = int(torch.randint(0, image.shape[0] - crop_h + 1, ()).item())
    left = int(torch.randint(0, image.shape[1] - crop_w + 1, ()).item())
    return (image[top:top + crop_h, left:left + crop_w],
            labels[top:top + crop_h, left:left + crop_w])


class IcnetCrops(Dataset):
    """Labelled frames of ``split`` as (data float32 (3, h, w), labels int64 (h, w)) crops."""

    def __init__(self, root: str, split: str, crop_hw: Tuple[int, int], seed: int = 0):
        self.crop_hw = tuple(crop_hw)
        self.items: List[Tuple[str, str]] = [
            (snippet.frames[index], path) for snippet in list_snippets(root, split)
            for index, path in sorted(snippet.labels.items())]
        if not self.items:
            raise ValueError(f'no labelled frames in {root} split {split!r}')

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image_path, label_path = self.items[index]
        image, labels = read_image(image_path), read_labels(label_path)
        scale = _uniform(*SCALE_RANGE)
        size_wh = (max(2, round(image.shape[1] * scale)), max(2, round(image.shape[0] * scale)))
        image = cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR)
        labels = cv2.resize(labels, size_wh, interpolation=cv2.INTER_NEAREST)
        image, labels = _random_crop(image, labels, self.crop_hw)
        if torch.rand(()).item() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        return _to_data(image), torch.from_numpy(labels.astype(np.int64))


TARGETS = ('auto', 'labels', 'teacher')
"""What the Refiner learns on a propagated frame: ``labels`` the ground truth (frames without
are skipped), ``teacher`` the frozen network's own output on that frame (any frame: unlabelled
video works), ``auto`` the ground truth in sources that have labels and the teacher in sources
that have none."""


class RefinerPairs(Dataset):
    """(data, probs_warped, features_warped, mask, target) for target frames t >= 1.

    Frames are fitted to ``size_hw`` (:func:`~evs_ros.training.sources.fit_to`: resized to cover
    it, centre crop; whole frames, no random crop: P and F must stay aligned with the image);
    d is drawn in 1..min(max_gap, t); k = t - d is the keyframe, always in the same sequence
    (no cut between). P, F and the IAM mask M come from the pipeline's own propagation steps
    (``evs_ros.pipeline.state``: DIS between consecutive frames, flows composed at the
    probability / feature resolution, IAM on the last step) with the given flow and IAM settings,
    so the Refiner trains on exactly what it is given at run time. ``mask`` is float32 (h, w) in
    [0, 1] at the probability resolution: the loss weights pixels by it (eq. 4 uses P_refiner
    only there). ``features`` is float32 (0, 1, 1) for a teacher without features.

    ``target`` is at the probability resolution (h, w): int64 class ids (255 = ignore; ground
    truth shrunk nearest, or the teacher's argmax), or with ``soft_targets`` float32 (C, h, w)
    probabilities (the teacher's; ground truth one-hot, all zeros where ignored).

    Args:
        sequences: :class:`~evs_ros.training.sources.TrainSequence` list (several sources).
        teacher: the frozen :class:`~evs_ros.models.base.SegmentationModel` (any backend), or a
            :class:`~evs_ros.training.teacher_cache.TeacherCache` around it.
        targets: one of :data:`TARGETS`.
    """

    def __init__(self, sequences: Sequence[TrainSequence], size_hw: Tuple[int, int], teacher,
                 max_gap: int = 5, targets: str = 'auto', soft_targets: bool = False,
                 flow_config: FlowConfig = FlowConfig(), iam_config: IamConfig = IamConfig()):
        if targets not in TARGETS:
            raise ValueError(f'targets={targets!r}; expected one of {", ".join(TARGETS)}')
        self.size_hw = tuple(size_hw)
        self.max_gap = max(1, int(max_gap))
        self.teacher = teacher if isinstance(teacher, TeacherCache) else TeacherCache(teacher)
        self.sequences = list(sequences)
        self.targets, self.soft_targets = targets, bool(soft_targets)
        self.flow = FlowEstimator(flow_config)
        self.iam_config = iam_config
        self.items = [(number, index) for number, sequence in enumerate(self.sequences)
                      for index in range(1, len(sequence.frames))
                      if self._has_target(sequence, index)]
        if not self.items:
            sources = ', '.join(sorted({s.source for s in self.sequences})) or 'the data'
            raise ValueError(f'no frame with a predecessor and a target ({targets}) in '
                             f'{sources}' + ('; unlabelled video needs --targets teacher or '
                                             'auto' if targets == 'labels' else ''))

    def uses_labels(self, sequence: TrainSequence) -> bool:
        """Tell whether ``sequence``'s targets are its ground truth (else the teacher's output)."""
        return self.targets == 'labels' or (self.targets == 'auto' and bool(sequence.labels))

    def _has_target(self, sequence: TrainSequence, index: int) -> bool:
        return index in sequence.labels if self.uses_labels(sequence) else True

    def label_files(self) -> List[str]:
        """List the ground-truth files that serve as targets (in item order)."""
        return [self.sequences[number].labels[index] for number, index in self.items
                if self.uses_labels(self.sequences[number])]

    def __len__(self) -> int:
        return len(self.items)

    def _frame(self, path: str) -> np.ndarray:
        return fit_to(read_image(path), self.size_hw)

    def _propagate(self, paths: Sequence[str], frames: List[np.ndarray]):
        """Propagate the keyframe prediction on ``frames[0]`` to ``frames[-1]``.

        As the pipeline does with R off: returns (probs_warped, features_warped, IAM mask of the
        last step).
        """
        state = PropagationState.from_prediction(self.teacher.predict(paths[0], frames[0]),
                                                 frames[0].shape[:2])
        grays = [to_gray(frame) for frame in frames]
        iam = None
        for previous, current in zip(grays[:-1], grays[1:]):
            flow_cur_to_prev, flow_prev_to_cur = consecutive_flows(
                self.flow, current, previous, self.iam_config)
            iam = state.propagate(flow_cur_to_prev, self.iam_config,
                                  flow_prev_to_cur=flow_prev_to_cur,
                                  labels_from=self.flow.config.labels_from)
        features = state.aligned_features()
        if features is None:
            features = np.zeros((0, 1, 1), np.float32)
        return state.aligned_probs(), features, iam.mask.astype(np.float32)

    def _target(self, sequence: TrainSequence, index: int, image: np.ndarray,
                num_classes: int, size_hw: Tuple[int, int]) -> np.ndarray:
        """Return the target of frame ``index`` at the probability resolution (class docstring)."""
        if self.uses_labels(sequence):
            labels = fit_to(read_labels(sequence.labels[index]), self.size_hw, labels=True)
            labels = cv2.resize(labels, size_hw[::-1], interpolation=cv2.INTER_NEAREST)
            if not self.soft_targets:
                return labels.astype(np.int64)
            one_hot = np.zeros((num_classes,) + tuple(size_hw), np.float32)
            rows, cols = np.nonzero(labels < num_classes)
            one_hot[labels[rows, cols], rows, cols] = 1.0
            return one_hot
        probs = self.teacher.predict(sequence.frames[index], image).probs
        if probs.shape[-2:] != tuple(size_hw):
            raise ValueError(f'the teacher gave probabilities of {probs.shape[-2:]} for one frame '
                             f'and {tuple(size_hw)} for another of the same size')
        return probs if self.soft_targets else probs.argmax(axis=0).astype(np.int64)

    def __getitem__(self, item: int):
        number, target = self.items[item]
        sequence = self.sequences[number]
        gap = int(torch.randint(1, min(self.max_gap, target) + 1, ()).item())
        paths = sequence.frames[target - gap:target + 1]
        frames = [self._frame(path) for path in paths]
        probs, features, mask = self._propagate(paths, frames)
        wanted = self._target(sequence, target, frames[-1], probs.shape[0], probs.shape[-2:])
        image = frames[-1]
        if torch.rand(()).item() < 0.5:
            image, mask, wanted = image[:, ::-1], mask[:, ::-1], wanted[..., ::-1]
            probs, features = probs[:, :, ::-1], features[:, :, ::-1]
        return (_to_data(image),) + tuple(
            torch.from_numpy(np.ascontiguousarray(array))
            for array in (probs, features, mask, wanted))
