"""Parity: the runtime with an inline inference equals the synchronous pipeline, frame by frame.

Both drive the one per-frame stepper; with the network run inline there is no catch-up, so every
output (labels, IAM mask, probabilities, frame info) must be identical. Real DIS flow, a stub
network with features and a stub Refiner that depends on all its inputs.
"""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from evs_ros.config import EvsConfig, FlowConfig, IamConfig, RuntimeConfig, operating_point
from evs_ros.models.base import Prediction
from evs_ros.pipeline import EvsPipeline, EvsStream
from evs_ros.pipeline.flow_prefetch import PrefetchedFlow
from evs_ros.pipeline.inference import InlineInference

NUM_CLASSES = 5
INFO_FIELDS = ('seq', 'stamp_ns', 'keyframe', 'frames_since_keyframe', 'refined',
               'operating_point')


class TextureModel:
    """Classes from the blue channel's quintiles at 1/4 resolution, plus 1/8 features."""

    num_classes = NUM_CLASSES

    def predict(self, image_bgr):
        small = cv2.resize(image_bgr, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        labels = np.clip(small[..., 0].astype(np.int64) * NUM_CLASSES // 256, 0, NUM_CLASSES - 1)
        probs = np.eye(NUM_CLASSES, dtype=np.float32)[labels].transpose(2, 0, 1) * 0.6 + 0.08
        features = cv2.resize(image_bgr, None, fx=0.125, fy=0.125).astype(np.float32)
        return Prediction(np.ascontiguousarray(probs), features.transpose(2, 0, 1).copy())


class MixingRefiner:
    """P_refiner from the image (green channel), the warped probabilities and the features."""

    def refine(self, image_bgr, probs_warped, features_warped):
        height, width = probs_warped.shape[1:]
        green = cv2.resize(image_bgr[..., 1], (width, height)).astype(np.float32) / 255.0
        feature_mean = float(features_warped.mean()) / 255.0 if features_warped is not None else 0
        shifted = np.roll(probs_warped, 1, axis=0)
        return (0.5 * probs_warped + 0.5 * shifted * green + feature_mean * 0.01).astype(
            np.float32)


def frames(count, size_hw=(96, 160), seed=3):
    """uint8 (H, W, 3) frames of a smooth texture panning 2 px right, tilting 1 px down."""
    rng = np.random.default_rng(seed)
    height, width = size_hw
    base = cv2.GaussianBlur(rng.integers(0, 255, (height + 40, width + 80, 3), np.uint8),
                            (0, 0), 3.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    return [np.ascontiguousarray(base[i:i + height, 2 * i:2 * i + width]) for i in range(count)]


def run_sync(config, images, switches):
    pipeline = EvsPipeline(config, TextureModel(), MixingRefiner())
    results = []
    for index, image in enumerate(images):
        if index in switches:
            pipeline.set_config(switches[index])
        results.append(pipeline.process(image, stamp_ns=1000 + index))
    return results


def run_runtime_inline(config, images, switches):
    results = []
    stream = EvsStream(config, InlineInference(TextureModel(), MixingRefiner(), False),
                       results.append, name='parity')
    try:
        for index, image in enumerate(images):
            if index in switches:
                assert stream.drain(30.0)
                stream.set_config(switches[index])
            assert stream.submit(image, stamp_ns=1000 + index)
            assert stream.drain(30.0)  # queue of 1 frame: no drops, order kept
    finally:
        assert stream.close()
    return results


def assert_same(sync_results, runtime_results):
    assert len(sync_results) == len(runtime_results)
    for expected, got in zip(sync_results, runtime_results):
        for name in INFO_FIELDS:
            assert getattr(got.info, name) == getattr(expected.info, name), (name, expected.info)
        np.testing.assert_equal(got.info.inconsistent_fraction,
                                expected.info.inconsistent_fraction)
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_array_equal(got.mask, expected.mask)
        assert (got.probs is None) == (expected.probs is None)
        if expected.probs is not None:
            np.testing.assert_array_equal(got.probs, expected.probs)


@pytest.mark.parametrize('name', ['EVS02', 'EVS05', 'EVS08', 'EVS14', 'ADAPTIVE'])
def test_runtime_with_inline_inference_equals_synchronous_pipeline(name):
    config = EvsConfig(operating_point=operating_point(name),
                       runtime=RuntimeConfig(input_queue_size=1))
    images = frames(14)
    assert_same(run_sync(config, images, {}), run_runtime_inline(config, images, {}))


def test_parity_holds_across_config_switches_and_a_resolution_change():
    config = EvsConfig(operating_point=operating_point('EVS06'))
    images = frames(10) + [cv2.resize(f, (128, 64)) for f in frames(8, seed=5)]
    switches = {
        4: replace(config, operating_point=operating_point('EVS08')),   # W off: hold
        7: replace(config, operating_point=operating_point('EVS04'),    # W back on, exact IAM
                   iam=IamConfig(backward_flow='dis')),
        12: replace(config, operating_point=operating_point('EVS12')),  # D = 0.5
    }
    sync_results = run_sync(config, images, switches)
    assert_same(sync_results, run_runtime_inline(config, images, switches))
    assert any(r.info.refined for r in sync_results)
    assert sync_results[10].info.keyframe  # the resolution change


@pytest.mark.parametrize('name', ['EVS02', 'EVS05', 'EVS08', 'ADAPTIVE'])
def test_flows_prefetched_on_other_cores_change_nothing(name, monkeypatch):
    """Flows prefetched by two threads for waiting frames: still the synchronous outputs.

    Frames are fed as fast as the stream takes them (a buffer of 4, nothing dropped).
    """
    used = []
    original = PrefetchedFlow.result
    monkeypatch.setattr(PrefetchedFlow, 'result', lambda self, *args: used.append(
        original(self, *args)) or used[-1])
    config = EvsConfig(operating_point=operating_point(name),
                       runtime=RuntimeConfig(input_queue_size=4, flow_prefetch_threads=2))
    images = frames(16)
    results = []
    stream = EvsStream(config, InlineInference(TextureModel(), MixingRefiner(), False),
                       results.append, name='prefetch')
    try:
        for index, image in enumerate(images):
            assert stream.submit(image, stamp_ns=1000 + index, wait=True)
        assert stream.drain(30.0)
    finally:
        assert stream.close()
    assert_same(run_sync(config, images, {}), results)
    prefetched = sum(flows is not None for flows in used)
    assert prefetched >= 4 if operating_point(name).warp else prefetched == 0


@pytest.mark.parametrize('name', ['EVS02', 'EVS07', 'ADAPTIVE'])
def test_parity_holds_when_labels_are_warped_from_the_previous_frame(name):
    """The other label mode (paper eq. 1; the default warps from the keyframe)."""
    config = EvsConfig(operating_point=operating_point(name),
                       flow=FlowConfig(labels_from='previous'),
                       runtime=RuntimeConfig(input_queue_size=1))
    images = frames(14)
    sync_results = run_sync(config, images, {})
    assert_same(sync_results, run_runtime_inline(config, images, {}))
    assert not np.array_equal(sync_results[3].labels, run_sync(
        replace(config, flow=FlowConfig(labels_from='keyframe')), images, {})[3].labels)
