"""Tests for evs_ros.data.metrics: exact IoU on hand-made confusions, official-evaluator check."""

import importlib

import numpy as np
import pytest

from evs_ros.data.labels import CLASS_NAMES, IGNORE, train_ids_to_label_ids
from evs_ros.data.metrics import ConfusionMatrix


def test_hand_made_confusion():
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, IGNORE]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 2]], np.uint8)
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, gt)
    # class 0: tp 1, fn 1 (->1), fp 1 (2->0) -> 1/3; class 1: tp 2, fp 1 -> 2/3;
    # class 2: tp 2, fn 1 -> 2/3; the ignored pixel is skipped entirely.
    np.testing.assert_allclose(cm.iou_per_class(), [1 / 3, 2 / 3, 2 / 3])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert cm.matrix.sum() == 7


def test_absent_classes_are_nan_and_excluded_from_mean():
    cm = ConfusionMatrix(num_classes=4)
    cm.update(np.array([0, 0, 1]), np.array([0, 1, 1]))
    iou = cm.iou_per_class()
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert cm.miou() == pytest.approx((0.5 + 0.5) / 2)
    report = cm.as_dict(['a', 'b', 'c', 'd'])
    assert report['iou']['c'] is None and report['miou'] == pytest.approx(0.5)


def test_out_of_range_prediction_counts_as_miss_and_updates_accumulate():
    cm = ConfusionMatrix(num_classes=2)
    cm.update(np.array([IGNORE, 0]), np.array([0, 0]))
    cm.update(np.array([1]), np.array([1]))
    np.testing.assert_allclose(cm.iou_per_class(), [0.5, 1.0])
    assert cm.pixel_accuracy() == pytest.approx(2 / 3)
    other = ConfusionMatrix(num_classes=2)
    other.merge(cm)
    np.testing.assert_array_equal(other.matrix, cm.matrix)
    cm.reset()
    assert np.isnan(cm.miou())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        ConfusionMatrix().update(np.zeros((2, 2)), np.zeros((2, 3)))


def _random_pair(rng, shape=(24, 32)):
    gt = rng.integers(0, 19, shape).astype(np.uint8)
    gt[rng.random(shape) < 0.1] = IGNORE
    gt[gt == 16] = 13  # one class absent from ground truth
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, 19, shape)).astype(np.uint8)
    pred[pred == IGNORE] = 0
    pred[pred == 17] = 18  # one class never predicted (present in gt: IoU 0)
    pred[pred == 16] = 15  # one class absent from both (IoU nan)
    pred[rng.random(shape) < 0.02] = IGNORE  # predicted 'unlabeled' counts as a miss
    return pred, gt


def test_matches_official_cityscapes_evaluator(tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setenv('CITYSCAPES_DATASET', str(tmp_path))
    monkeypatch.setenv('CITYSCAPES_RESULTS', str(tmp_path / 'results'))
    monkeypatch.setenv('CITYSCAPES_EXPORT_DIR', str(tmp_path))
    if not hasattr(np, 'in1d'):
        monkeypatch.setattr(np, 'in1d', np.isin, raising=False)
    official = importlib.reload(importlib.import_module(
        'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling'))
    rng = np.random.default_rng(7)
    cm = ConfusionMatrix()
    pred_paths, gt_paths = [], []
    (tmp_path / 'results').mkdir()
    for index in range(3):
        pred, gt = _random_pair(rng)
        cm.update(pred, gt)
        stem = f'city_{index:06d}_000019'
        gt_paths.append(str(tmp_path / f'{stem}_gtFine_labelIds.png'))
        pred_paths.append(str(tmp_path / 'results' / f'{stem}_pred.png'))
        Image.fromarray(train_ids_to_label_ids(gt)).save(gt_paths[-1])
        Image.fromarray(train_ids_to_label_ids(pred)).save(pred_paths[-1])
    args = official.args
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    result = official.evaluateImgLists(pred_paths, gt_paths, args)
    expected = np.array([result['classScores'][name] for name in CLASS_NAMES])
    np.testing.assert_allclose(cm.iou_per_class(), expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(expected[16])
    assert expected[17] == 0.0
    assert cm.miou() == pytest.approx(result['averageScoreClasses'], rel=1e-12)
