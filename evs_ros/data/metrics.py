"""Semantic segmentation metrics: confusion matrix, per-class IoU, mIoU (paper §4.1).

IoU follows the Cityscapes definition TP / (TP + FP + FN), accumulated over a whole dataset (not
averaged per image); pixels whose ground truth is ``ignore`` are skipped, and predictions outside
``0..num_classes-1`` count as wrong (false negatives of the ground-truth class).
"""

from typing import Dict, Optional, Sequence

import numpy as np

from evs_ros.data.json_values import finite_or_none
from evs_ros.data.labels import CLASS_NAMES, IGNORE


class ConfusionMatrix:
    """Accumulates a (num_classes, num_classes) int64 confusion matrix, rows = ground truth."""

    def __init__(self, num_classes: int = 19, ignore: int = IGNORE,
                 prediction_lut: Optional[np.ndarray] = None):
        self.num_classes = int(num_classes)
        self.ignore = int(ignore)
        # uint8 (256,): predicted ids -> ground-truth ids (another dataset's classes), or None
        self.prediction_lut = prediction_lut
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        # predictions outside the class range: counted per ground-truth class as misses
        self.invalid_predictions = np.zeros(self.num_classes, dtype=np.int64)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.matrix[:] = 0
        self.invalid_predictions[:] = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one prediction.

        Args:
            pred: integer (H, W) predicted class ids (uint8 through ``prediction_lut`` if set).
            gt: integer (H, W) ground-truth class ids; ``ignore`` pixels are skipped.
        """
        if self.prediction_lut is not None:
            pred = self.prediction_lut[np.asarray(pred, dtype=np.uint8)]
        pred = np.asarray(pred).ravel().astype(np.int64)
        gt = np.asarray(gt).ravel().astype(np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f'prediction has {pred.size} pixels, ground truth {gt.size}')
        keep = (gt != self.ignore) & (gt >= 0) & (gt < self.num_classes)
        pred, gt = pred[keep], gt[keep]
        in_range = (pred >= 0) & (pred < self.num_classes)
        n = self.num_classes
        self.matrix += np.bincount(gt[in_range] * n + pred[in_range],
                                   minlength=n * n).reshape(n, n)
        self.invalid_predictions += np.bincount(gt[~in_range], minlength=n)

    def merge(self, other: 'ConfusionMatrix') -> None:
        """Add another matrix with the same number of classes."""
        self.matrix += other.matrix
        self.invalid_predictions += other.invalid_predictions

    def iou_per_class(self) -> np.ndarray:
        """Return float64 (num_classes,) IoU in [0, 1]; nan for classes absent from gt and pred."""
        true_positive = np.diag(self.matrix).astype(np.float64)
        gt_total = self.matrix.sum(axis=1) + self.invalid_predictions
        pred_total = self.matrix.sum(axis=0)
        union = gt_total + pred_total - true_positive
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes present in ground truth or prediction (nan if none)."""
        iou = self.iou_per_class()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')

    def pixel_accuracy(self) -> float:
        """Fraction of non-ignored pixels predicted correctly (nan if none)."""
        total = self.matrix.sum() + self.invalid_predictions.sum()
        return float(np.trace(self.matrix) / total) if total else float('nan')

    def as_dict(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Return ``{'miou', 'pixel_accuracy', 'iou': {name: value or None}}`` (JSON-ready)."""
        names = list(CLASS_NAMES if class_names is None else class_names)
        if len(names) != self.num_classes:
            raise ValueError(f'{len(names)} class names given for {self.num_classes} classes')
        iou = self.iou_per_class()
        return {
            'miou': finite_or_none(self.miou(), None),
            'pixel_accuracy': finite_or_none(self.pixel_accuracy(), None),
            'iou': {name: finite_or_none(value, None) for name, value in zip(names, iou)},
        }
