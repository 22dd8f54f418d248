"""Training samples for ICNet and the Refiner from a Cityscapes-layout dataset (paper §4.1).

``IcnetCrops``: labelled frames, random scale / crop / horizontal flip, ICNet preprocessing.
``RefinerPairs``: (keyframe k, frame k + d) pairs with a frozen network's P and F at k warped to
k + d by the pipeline's own propagation steps, exactly the inputs the Refiner sees at run time
(§3.5).
"""

from typing import List, Tuple

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


class RefinerPairs(Dataset):
    """(data, probs_warped, features_warped, mask, labels) for every labelled target frame t >= 1.

    Frames are resized to ``size_hw`` (whole frames, no crop: P and F must stay aligned with the
    image); d is drawn in 1..min(max_gap, t); k = t - d is the keyframe. P, F and the IAM mask M
    come from the pipeline's own propagation steps (``evs_ros.pipeline.state``: DIS between
    consecutive frames, flows composed at the probability / feature resolution, IAM on the last
    step) with the given flow and IAM settings, so the Refiner trains on exactly what it is given
    at run time. ``mask`` is float32 (h, w) in [0, 1] at the probability resolution: the loss
    weights pixels by it (eq. 4 uses P_refiner only there). ``features`` is float32 (0, 1, 1)
    for a teacher without features.

    Args:
        teacher: the frozen :class:`~evs_ros.models.base.SegmentationModel` (any backend).
    """

    def __init__(self, root: str, split: str, size_hw: Tuple[int, int], teacher,
                 max_gap: int = 5, seed: int = 0, flow_config: FlowConfig = FlowConfig(),
                 iam_config: IamConfig = IamConfig()):
        self.size_hw = tuple(size_hw)
        self.max_gap = max(1, int(max_gap))
        self.teacher = teacher
        self.flow = FlowEstimator(flow_config)
        self.iam_config = iam_config
        self.items = [(snippet.frames, index, path) for snippet in list_snippets(root, split)
                      for index, path in sorted(snippet.labels.items()) if index >= 1]
        if not self.items:
            raise ValueError(f'no labelled frame with a predecessor in {root} split {split!r}')

    def __len__(self) -> int:
        return len(self.items)

    def _frame(self, path: str) -> np.ndarray:
        return cv2.resize(read_image(path), self.size_hw[::-1], interpolation=cv2.INTER_LINEAR)

    def _propagate(self, frames: List[np.ndarray]):
        """Propagate the keyframe prediction on ``frames[0]`` to ``frames[-1]``.

        As the pipeline does with R off: returns (probs_warped, features_warped, IAM mask of the
        last step).
        """
        state = PropagationState.from_prediction(self.teacher.predict(frames[0]),
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

    def __getitem__(self, index: int):
        frame_paths, target, label_path = self.items[index]
        gap = int(torch.randint(1, min(self.max_gap, target) + 1, ()).item())
        frames = [self._frame(path) for path in frame_paths[target - gap:target + 1]]
        probs, features, mask = self._propagate(frames)
        labels = cv2.resize(read_labels(label_path), self.size_hw[::-1],
                            interpolation=cv2.INTER_NEAREST)
        image = frames[-1]
        if torch.rand(()).item() < 0.5:
            image, labels, mask = image[:, ::-1], labels[:, ::-1], mask[:, ::-1]
            probs, features = probs[:, :, ::-1], features[:, :, ::-1]
        return (_to_data(image),) + tuple(
            torch.from_numpy(np.ascontiguousarray(array))
            for array in (probs, features, mask, labels.astype(np.int64)))
