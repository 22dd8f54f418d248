"""Properties of label/probability warping and flow composition (evs_ros.flow.warp)."""

import cv2
import numpy as np
import pytest

from evs_ros.flow import warp as warp_module
from evs_ros.flow import (
    compose_flows, identity_flow, pixel_grid, resize_flow, warp_dense, warp_labels,
)

H, W = 48, 64


def _labels(seed=0, shape=(H, W)):
    return np.random.default_rng(seed).integers(0, 19, shape, dtype=np.uint8)


def _translation(dx, dy, shape=(H, W)):
    flow = np.zeros(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


@pytest.fixture(params=[True, False], ids=['relative_map', 'grid_plus_flow'])
def remap_path(request, monkeypatch):
    """Run a test with cv2.WARP_RELATIVE_MAP (OpenCV >= 4.10) and with the grid fallback."""
    if request.param and not hasattr(cv2, 'WARP_RELATIVE_MAP'):
        pytest.skip('this OpenCV has no WARP_RELATIVE_MAP')
    monkeypatch.setattr(warp_module, '_USE_RELATIVE_MAP', request.param)
    return request.param


def test_pixel_grid_is_cached_and_read_only():
    grid = pixel_grid(3, 4)
    assert grid is pixel_grid(3, 4)
    assert not grid.flags.writeable
    assert grid[2, 3].tolist() == [3.0, 2.0]


@pytest.mark.parametrize('border', ['hold', 'ignore'])
def test_zero_flow_is_identity(remap_path, border):
    labels = _labels()
    probs = np.random.default_rng(1).random((19, H, W), dtype=np.float32)
    np.testing.assert_array_equal(warp_labels(labels, identity_flow(H, W), border), labels)
    np.testing.assert_array_equal(warp_dense(probs, identity_flow(H, W), border), probs)
    np.testing.assert_array_equal(warp_dense(probs[0], identity_flow(H, W), border), probs[0])


def test_integer_translation_moves_labels_exactly(remap_path):
    labels_prev = _labels()
    dx, dy = 5, -3  # each current pixel p was at p + (5, -3) in the previous frame
    warped = warp_labels(labels_prev, _translation(dx, dy))
    np.testing.assert_array_equal(warped[3:, :W - 5], labels_prev[:H - 3, 5:])


def test_border_modes_at_the_edges(remap_path):
    labels_prev = _labels()
    flow = _translation(5, -3)
    held = warp_labels(labels_prev, flow, border='hold')
    ignored = warp_labels(labels_prev, flow, border='ignore', fill=254)
    # Columns whose source is right of the image repeat the last column (rows shifted by 3).
    np.testing.assert_array_equal(held[3:, W - 5:],
                                  np.repeat(labels_prev[:H - 3, W - 1:], 5, axis=1))
    np.testing.assert_array_equal(held[:3, :W - 5], np.repeat(labels_prev[:1, 5:], 3, axis=0))
    assert (ignored[:, W - 5:] == 254).all() and (ignored[:3] == 254).all()
    np.testing.assert_array_equal(ignored[3:, :W - 5], held[3:, :W - 5])


def test_nearest_neighbour_rounds_subpixel_flow(remap_path):
    labels_prev = _labels()
    warped = warp_labels(labels_prev, _translation(2.2, 0.8))
    np.testing.assert_array_equal(warped[:H - 1, :W - 2], labels_prev[1:, 2:])


def test_warp_dense_gradient_image_exact(remap_path):
    rows, cols = np.mgrid[0:H, 0:W].astype(np.float32)
    gradient = 3.0 * cols - 2.0 * rows + 7.0
    for dx, dy in [(4, 2), (-3, 1), (0.5, -0.25)]:
        warped = warp_dense(gradient, _translation(dx, dy))
        expected = gradient + 3.0 * dx - 2.0 * dy
        np.testing.assert_allclose(warped[3:-3, 5:-5], expected[3:-3, 5:-5], atol=1e-3)


def test_warp_dense_resizes_full_resolution_flow(remap_path):
    probs = np.random.default_rng(2).random((19, H // 4, W // 4), dtype=np.float32)
    warped = warp_dense(probs, _translation(8, -4))  # full-res (H, W) flow = (2, -1) at 1/4
    np.testing.assert_array_equal(warped[:, 1:, :W // 4 - 2], probs[:, :H // 4 - 1, 2:])


@pytest.mark.parametrize('channels', [1, 2, 5, 19, 128])
def test_warp_dense_matches_per_plane_remap(remap_path, channels):
    rng = np.random.default_rng(channels)
    maps = rng.random((channels, H, W), dtype=np.float32)
    flow = (rng.random((H, W, 2), dtype=np.float32) - 0.5) * 6.0
    absolute_map = pixel_grid(H, W) + flow
    expected = np.stack([cv2.remap(plane, absolute_map, None, cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE) for plane in maps])
    np.testing.assert_allclose(warp_dense(maps, flow), expected, atol=1e-6)


def test_warp_dense_ignore_writes_fill(remap_path):
    maps = np.ones((6, H, W), np.float32)
    warped = warp_dense(maps, _translation(-4, 0), border='ignore', fill=-1.0)
    assert (warped[:, :, :4] == -1.0).all() and (warped[:, :, 4:] == 1.0).all()


def test_resize_flow_scales_vectors():
    flow = _translation(8.0, -4.0)
    small = resize_flow(flow, (H // 4, W // 2))
    assert small.shape == (H // 4, W // 2, 2) and small.dtype == np.float32
    np.testing.assert_allclose(small[..., 0], 4.0)
    np.testing.assert_allclose(small[..., 1], -1.0)
    assert resize_flow(flow, (H, W)) is flow


@pytest.mark.parametrize('size_hw', [(H // 4, W // 4), (H // 2, W // 3), (H * 2, W * 2)])
def test_resize_flow_follows_a_smooth_field(size_hw):
    rows, cols = np.mgrid[0:H, 0:W].astype(np.float32)
    flow = np.dstack([0.1 * cols, -0.05 * rows])      # vectors grow across the image
    small = resize_flow(flow, size_hw)
    scale_y, scale_x = size_hw[0] / H, size_hw[1] / W
    target_rows, target_cols = np.mgrid[0:size_hw[0], 0:size_hw[1]].astype(np.float32)
    source_cols = (target_cols + 0.5) / scale_x - 0.5  # pixel-centre correspondence
    source_rows = (target_rows + 0.5) / scale_y - 0.5
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(small[..., 0][inner], (0.1 * source_cols * scale_x)[inner],
                               atol=0.1 * scale_x * 0.6)
    np.testing.assert_allclose(small[..., 1][inner], (-0.05 * source_rows * scale_y)[inner],
                               atol=0.05 * scale_y * 0.6)


def test_compose_translations_is_sum(remap_path):
    composed = compose_flows(_translation(2, -1), _translation(3, 4))
    np.testing.assert_allclose(composed[..., 0], 5.0)
    np.testing.assert_allclose(composed[..., 1], 3.0)


def test_compose_then_warp_once_equals_warping_twice(remap_path):
    rows, cols = np.mgrid[0:H, 0:W]
    flow_b_to_a = np.zeros((H, W, 2), np.float32)
    flow_b_to_a[..., 0] = (rows // 8) % 3 - 1        # integer, varies across the image
    flow_b_to_a[..., 1] = (cols // 16) % 2
    flow_c_to_b = _translation(2, 1)
    flow_c_to_b[H // 2:, :, 0] = -1                   # two motions in frame c
    labels_a = _labels(3)
    twice = warp_labels(warp_labels(labels_a, flow_b_to_a), flow_c_to_b)
    once = warp_labels(labels_a, compose_flows(flow_b_to_a, flow_c_to_b))
    np.testing.assert_array_equal(once[4:-4, 4:-4], twice[4:-4, 4:-4])


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match='resize_flow'):
        warp_labels(_labels(), identity_flow(H // 2, W // 2))
    with pytest.raises(ValueError, match='hold'):
        warp_labels(_labels(), identity_flow(H, W), border='wrap')
    with pytest.raises(ValueError, match='C, h, w'):
        warp_dense(np.zeros((1, 2, H, W), np.float32), identity_flow(H, W))


def test_flow_field_resizes_once_per_resolution_and_rescales_vectors():
    from evs_ros.flow import FlowField
    native = np.zeros((8, 16, 2), np.float32)
    native[..., 0] = 1.0  # one pixel of the 16-wide grid
    field = FlowField(native, (32, 64))
    assert field.at((8, 16)) is native
    full = field.full
    assert full.shape == (32, 64, 2) and np.allclose(full[..., 0], 4.0)
    assert field.at((32, 64)) is full  # cached
    assert np.allclose(field.at((16, 32))[..., 0], 2.0)
    wrapped = FlowField.of(full)
    assert wrapped.camera_hw == (32, 64) and FlowField.of(wrapped) is wrapped
