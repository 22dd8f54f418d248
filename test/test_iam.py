"""Inconsistencies Attention Module, numpy part (evs_ros.pipeline.iam, paper eq. 3-4)."""

import cv2
import numpy as np
import pytest

from evs_ros.config import FlowConfig, IamConfig
from evs_ros.flow import FlowEstimator, resize_flow, warp_labels
from evs_ros.pipeline.iam import IamResult, blend_probs, compute_iam

H, W = 64, 96
SQUARE = (slice(20, 40), slice(38, 58))  # the square in the current frame
BINARY_ONLY = IamConfig(dilation_px=0, smoothing_px=1)


def _translation(dx, dy, shape=(H, W)):
    flow = np.zeros(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def _striped_labels():
    """Vertical stripes 0/1 of width 4 (background) and a square of label 2 at x 30..49."""
    labels = ((np.arange(W)[None, :] // 4) % 2).repeat(H, axis=0).astype(np.uint8)
    labels[20:40, 30:50] = 2
    return labels


def _moving_square_flow():
    """Camera pans (background moves +3 px), the square moves +8 px: two motions."""
    flow = _translation(-3, 0)
    flow[SQUARE + (0,)] = -8
    return flow


def _near_boundary(rows, cols, top, bottom, left, right, margin):
    """Tell which pixels lie within ``margin`` px of the rectangle's boundary.

    The rectangle is rows [top, bottom) and columns [left, right).
    """
    outer = (rows >= top - margin) & (rows < bottom + margin)
    outer &= (cols >= left - margin) & (cols < right + margin)
    inner = (rows >= top + margin) & (rows < bottom - margin)
    inner &= (cols >= left + margin) & (cols < right - margin)
    return outer & ~inner


def test_consistent_translation_gives_empty_mask():
    labels = np.random.default_rng(0).integers(0, 19, (H, W), dtype=np.uint8)
    result = compute_iam(labels, _translation(3, -2), IamConfig())
    assert isinstance(result, IamResult)
    assert not result.mask_binary.any()  # pixels whose warps left the image are not counted
    assert result.inconsistent_fraction == 0.0
    assert not result.mask.any()
    np.testing.assert_array_equal(result.labels_warped, warp_labels(labels, _translation(3, -2)))
    assert (result.labels_bf[:, W - 3:] == 255).all()  # its chain left the image


def test_zero_flow_keeps_labels():
    labels = _striped_labels()
    result = compute_iam(labels, _translation(0, 0), IamConfig())
    np.testing.assert_array_equal(result.labels_warped, labels)
    np.testing.assert_array_equal(result.labels_bf, labels)
    assert result.inconsistent_fraction == 0.0


def test_ignore_label_in_input_is_an_ordinary_label():
    labels = np.full((H, W), 255, np.uint8)
    labels[:, W // 2:] = 7
    result = compute_iam(labels, _translation(2, 0), IamConfig())
    assert not result.mask_binary.any()
    assert (result.labels_warped[:, :W // 2 - 2] == 255).all()
    assert (result.labels_warped[:, W // 2 - 2:] == 7).all()  # 'hold' at the right border


def test_two_motions_give_mask_at_the_boundary():
    result = compute_iam(_striped_labels(), _moving_square_flow(), BINARY_ONLY)
    rows, cols = np.nonzero(result.mask_binary)
    assert rows.size > 0
    assert _near_boundary(rows, cols, 20, 40, 38, 58, margin=8).all()  # one motion away at most
    assert result.inconsistent_fraction == pytest.approx(result.mask_binary.mean())


def test_dis_flow_over_occluding_square_gives_mask_at_the_boundary():
    rng = np.random.default_rng(1)
    background = cv2.GaussianBlur((rng.random((192, 256)) * 255).astype(np.uint8), (0, 0), 1.5)
    square = cv2.GaussianBlur((rng.random((60, 60)) * 255).astype(np.uint8), (0, 0), 1.5)
    gray_prev, gray_cur = background.copy(), background.copy()
    gray_prev[60:120, 80:140] = square
    gray_cur[60:120, 92:152] = square  # the square moves 12 px right over a static background
    labels_prev = np.zeros((192, 256), np.uint8)
    labels_prev[:, 128:] = 1
    labels_prev[60:120, 80:140] = 2
    flow = FlowEstimator(FlowConfig()).calc(gray_cur, gray_prev)
    result = compute_iam(labels_prev, flow, BINARY_ONLY)
    rows, cols = np.nonzero(result.mask_binary)
    assert rows.size > 0 and result.inconsistent_fraction < 0.05
    # Around the square in the current frame, within the 12 px it moved.
    assert _near_boundary(rows, cols, 60, 120, 92, 152, margin=12).all()


def test_dilation_grows_and_smoothing_softens_the_mask():
    labels, flow = _striped_labels(), _moving_square_flow()
    binary = compute_iam(labels, flow, BINARY_ONLY)
    dilated = compute_iam(labels, flow, IamConfig(dilation_px=3, smoothing_px=1))
    smoothed = compute_iam(labels, flow, IamConfig(dilation_px=3, smoothing_px=5))
    np.testing.assert_array_equal(dilated.mask_binary, binary.mask_binary)
    assert (dilated.mask > 0).sum() > (binary.mask > 0).sum()
    assert (dilated.mask[binary.mask_binary] == 1.0).all()
    assert set(np.unique(dilated.mask)) <= {0.0, 1.0}
    assert smoothed.mask.dtype == np.float32
    assert 0.0 <= smoothed.mask.min() and smoothed.mask.max() <= 1.0
    assert ((smoothed.mask > 0) & (smoothed.mask < 1)).any()
    assert (smoothed.mask[binary.mask_binary] == 1.0).all()
    assert (smoothed.mask > 0).sum() > (dilated.mask > 0).sum()


def test_full_resolution_flow_is_resized_to_the_labels():
    labels = _striped_labels()
    flow_full = resize_flow(_moving_square_flow(), (2 * H, 2 * W))
    from_full = compute_iam(labels, flow_full, IamConfig())
    from_resized = compute_iam(labels, resize_flow(flow_full, (H, W)), IamConfig())
    np.testing.assert_array_equal(from_full.mask, from_resized.mask)


def test_exact_backward_flow_is_used_when_given():
    labels = _striped_labels()
    with pytest.raises(ValueError, match='flow_prev_to_cur'):
        compute_iam(labels, _translation(2, 1), IamConfig(backward_flow='dis'))
    consistent = compute_iam(labels, _translation(2, 1), IamConfig(backward_flow='dis'),
                             flow_prev_to_cur=_translation(-2, -1))
    assert not consistent.mask_binary.any()
    broken = compute_iam(labels, _translation(2, 1), IamConfig(backward_flow='dis'),
                         flow_prev_to_cur=_translation(4, 0))
    assert broken.mask_binary.any()


def test_blend_probs_is_equation_4():
    probs_refiner = np.full((3, 2, 2), 0.8, np.float32)
    probs_warped = np.full((3, 2, 2), 0.2, np.float32)
    mask = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    blended = blend_probs(probs_refiner, probs_warped, mask)
    assert blended.dtype == np.float32 and blended.shape == (3, 2, 2)
    expected = np.array([[0.2, 0.8], [0.5, 0.35]], np.float32)
    np.testing.assert_allclose(blended, np.broadcast_to(expected, (3, 2, 2)), atol=1e-6)


def test_blend_probs_resizes_the_mask():
    probs_refiner = np.ones((2, 8, 8), np.float32)
    probs_warped = np.zeros((2, 8, 8), np.float32)
    mask = np.zeros((4, 4), np.float32)
    mask[:, 2:] = 1.0
    blended = blend_probs(probs_refiner, probs_warped, mask)
    assert (blended[:, :, :3] == 0).all() and (blended[:, :, 5:] == 1).all()
    with pytest.raises(ValueError, match='one shape'):
        blend_probs(probs_refiner, probs_warped[:1], mask)


def test_labels_from_the_keyframe_keep_sub_cell_motion_that_frame_to_frame_warps_round_away():
    """A half-cell shift per frame at the probability resolution.

    Warped frame to frame with nearest sampling, the boundary moves a whole cell per frame or not
    at all; warped once from the keyframe through the composed flow it lands where the motion put
    it.
    """
    from evs_ros.config import IamConfig
    from evs_ros.flow import FlowField
    from evs_ros.models.base import Prediction
    from evs_ros.pipeline.state import PropagationState
    low = np.zeros((8, 32), np.int64)
    low[:, 16:] = 1
    probs = np.eye(2, dtype=np.float32)[low].transpose(2, 0, 1)
    results = {}
    for mode in ('previous', 'keyframe'):
        state = PropagationState.from_prediction(Prediction(np.ascontiguousarray(probs)),
                                                 (32, 128))
        step = np.zeros((8, 32, 2), np.float32)
        step[..., 0] = -0.5  # each frame the scene moves half a cell to the right
        for _ in range(4):
            state.propagate(FlowField(step, (32, 128)), IamConfig(), labels_from=mode)
        results[mode] = int(np.argmax(state.labels_low[0]))
    assert results['keyframe'] == 18  # 16 + 4 x 0.5
    assert results['previous'] != 18
