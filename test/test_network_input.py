"""The network's scale, sliding windows and bilinear keyframe labels.

model.input_short_side (the catalogue's trained_short_side), model.window and model.upsample:
one mechanism for every network, applied by load_models and the pipeline.
"""

import logging
from dataclasses import replace

import cv2
import numpy as np
import pytest

from evs_ros.config import EvsConfig, ModelConfig, operating_point
from evs_ros.models.base import Prediction
from evs_ros.models.loading import apply_input_settings, catalogue_entry_for, load_models
from evs_ros.models.sliding import SlidingWindowModel, window_starts
from evs_ros.models.weights_catalogue import WeightsEntry
from evs_ros.pipeline import EvsPipeline
from evs_ros.pipeline import network_input as ni
from evs_ros.pipeline.state import PropagationState


class RecordingNetwork:
    """Two classes at 1/4 of the input: class 1 where the red channel is above 127.

    Records the input sizes it is given. Each output cell depends on its own 4x4 pixels only.
    """

    num_classes = 2
    class_names = ('dark', 'red')
    feature_channels = 1

    def __init__(self, trained_short_side=None):
        if trained_short_side:
            self.trained_short_side = trained_short_side
        self.inputs = []

    def predict(self, image_bgr):
        self.inputs.append(image_bgr.shape[:2])
        height, width = image_bgr.shape[:2]
        rows, cols = -(-height // 4), -(-width // 4)
        padded = np.zeros((rows * 4, cols * 4), np.float32)
        padded[:height, :width] = image_bgr[..., 2]
        red = padded.reshape(rows, 4, cols, 4).mean(axis=(1, 3)) > 127
        probs = np.stack([~red, red]).astype(np.float32)
        return Prediction(probs=probs, features=probs[1:] * 2.0)


def _frame(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _config(**model):
    return replace(EvsConfig(), model=ModelConfig(backend='python:x:y', refiner='', **model),
                   operating_point=operating_point('PERFRAME'))


def test_network_scale_follows_the_training_scale_and_d():
    assert ni.network_scale((1024, 2048), 1.0, 512) == 0.5
    assert ni.network_scale((1024, 2048), 0.5, 512) == 0.25
    assert ni.network_scale((1024, 2048), 0.5, None) == 0.5
    assert ni.network_scale((360, 480), 1.0, 512) == pytest.approx(1.4222, abs=1e-4)
    assert ni.scaled_hw((1024, 2048), 0.5) == (512, 1024)
    assert ni.resize_for_network(_frame(360, 480), 512 / 360).shape == (512, 683, 3)
    frame = _frame(64, 96)
    assert ni.resize_for_network(frame, 1.0) is frame


@pytest.mark.parametrize('wanted, trained, expected', [
    (0, 512, 512), (0, None, None), (-1, 512, None), (300, 512, 300), (300, None, 300)])
def test_input_short_side_from_the_setting_and_the_training_scale(wanted, trained, expected):
    network = apply_input_settings(RecordingNetwork(trained),
                                   ModelConfig(input_short_side=wanted))
    assert ni.input_short_side(network) == expected


def test_catalogue_entries_give_their_scale_to_any_backend():
    entry = catalogue_entry_for('hf:nvidia/segformer-b0-finetuned-cityscapes-512-1024')
    assert entry.name == 'segformer-b0-cityscapes-512' and entry.trained_short_side == 512
    assert catalogue_entry_for('weights:espnetv2-s2-cityscapes').trained_short_side == 512
    snapshot = ('hf:/home/robot/.cache/huggingface/hub/models--nvidia--segformer-b0-finetuned-'
                'cityscapes-768-768/snapshots/0123456789abcdef0123456789abcdef01234567')
    assert catalogue_entry_for(snapshot).trained_short_side == 768
    assert catalogue_entry_for('weights:no-such-entry') is None
    assert catalogue_entry_for('icnet:default') is None
    network = apply_input_settings(RecordingNetwork(), ModelConfig(), entry)
    assert network.trained_short_side == 512 and network.input_short_side == 512


@pytest.mark.parametrize('wanted, downscale, seen', [
    (0, 1.0, (64, 128)), (0, 0.5, (32, 64)), (-1, 1.0, (128, 256)), (-1, 0.5, (64, 128)),
    (96, 1.0, (96, 192))])
def test_the_pipeline_feeds_the_network_at_its_scale_times_d(wanted, downscale, seen):
    network = apply_input_settings(RecordingNetwork(trained_short_side=64),
                                   ModelConfig(input_short_side=wanted))
    config = _config(input_short_side=wanted)
    config = replace(config, operating_point=replace(config.operating_point,
                                                     downscale=downscale))
    result = EvsPipeline(config, network).process(_frame(128, 256))
    assert network.inputs == [seen]
    assert result.labels.shape == (128, 256)


def test_a_camera_smaller_than_the_training_scale_is_enlarged():
    network = apply_input_settings(RecordingNetwork(trained_short_side=512), ModelConfig())
    EvsPipeline(_config(), network).process(_frame(360, 480))
    assert network.inputs == [(512, 683)]


def test_the_wrong_scale_is_named_once_with_the_setting_that_fits(caplog):
    network = apply_input_settings(RecordingNetwork(trained_short_side=64),
                                   ModelConfig(input_short_side=-1))
    pipeline = EvsPipeline(_config(input_short_side=-1), network)
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        for seed in range(3):
            pipeline.process(_frame(128, 256, seed))
    warnings = [r.getMessage() for r in caplog.records if 'trained at' in r.getMessage()]
    assert len(warnings) == 1 and '\n' not in warnings[0]
    assert 'short side 128 px at D=1, 2x the 64 px it was trained at' in warnings[0]
    assert 'model.input_short_side 0' in warnings[0]
    assert 'operating_point.downscale 0.5' in warnings[0]
    caplog.clear()
    native = apply_input_settings(RecordingNetwork(trained_short_side=64), ModelConfig())
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        EvsPipeline(_config(), native).process(_frame(128, 256))
    assert not [r for r in caplog.records if 'trained at' in r.getMessage()]


def _smooth_probs(classes, height, width, sigma, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.random((classes, height, width), dtype=np.float32)
    probs = np.stack([cv2.GaussianBlur(channel, (0, 0), sigma) for channel in probs])
    return probs / probs.sum(axis=0)


@pytest.mark.parametrize('shape, camera_hw', [((19, 40, 60), (160, 240)),
                                              ((5, 17, 33), (70, 130)),
                                              ((3, 9, 9), (9, 20)), ((4, 1, 1), (5, 7))])
def test_bilinear_labels_are_the_argmax_of_the_upsampled_probabilities(shape, camera_hw):
    probs = _smooth_probs(*shape, sigma=2.0)
    upsampled = cv2.resize(np.ascontiguousarray(probs.transpose(1, 2, 0)), camera_hw[::-1],
                           interpolation=cv2.INTER_LINEAR).reshape(camera_hw + (shape[0],))
    expected = np.argmax(upsampled, axis=2)
    labels = ni.bilinear_argmax(probs, camera_hw)
    assert labels.dtype == np.uint8 and labels.shape == camera_hw
    assert (labels == expected).mean() > 0.9999
    nearest = PropagationState.from_prediction(Prediction(probs), camera_hw).labels
    bilinear = PropagationState.from_prediction(Prediction(probs), camera_hw, 'bilinear')
    assert (bilinear.labels == labels).all()
    assert (bilinear.labels_low == np.argmax(probs, axis=0)).all()
    if shape[1] > 1:
        assert (nearest != labels).any()  # the two really differ at class boundaries


def test_model_upsample_bilinear_reaches_the_keyframe_labels():
    network = RecordingNetwork()
    frame = cv2.GaussianBlur(_frame(64, 96), (0, 0), 3)
    nearest = EvsPipeline(_config(), network).process(frame).labels
    bilinear = EvsPipeline(_config(upsample='bilinear'), network).process(frame).labels
    probs = network.predict(frame).probs
    assert (bilinear == ni.bilinear_argmax(probs, (64, 96))).all()
    assert (nearest == cv2.resize(probs.argmax(0).astype(np.uint8), (96, 64),
                                  interpolation=cv2.INTER_NEAREST)).all()


def test_window_starts_cover_the_frame_on_the_output_grid():
    assert window_starts(100, 128, 96) == [0]
    assert window_starts(2048, 1024, 768) == [0, 768, 1024]
    assert window_starts(1024, 1024, 768, 4) == [0]
    starts = window_starts(1030, 512, 384, 8)
    assert starts == [0, 384, 520] and 520 + 512 >= 1030 and 1030 - 520 > 512 - 8


@pytest.mark.parametrize('height, width', [(100, 152), (96, 96), (133, 257)])
def test_sliding_windows_of_a_local_network_equal_the_whole_frame(height, width):
    network = RecordingNetwork()
    frame = cv2.GaussianBlur(_frame(height, width), (0, 0), 6)
    frame[..., 2] = cv2.normalize(frame[..., 2], None, 0, 255, cv2.NORM_MINMAX)
    whole = network.predict(frame)
    network.inputs.clear()
    sliding = SlidingWindowModel(network, (64, 64))
    result = sliding.predict(frame)
    assert result.probs.shape == whole.probs.shape
    assert result.features.shape == whole.features.shape
    assert all(60 < size[0] <= 64 and 60 < size[1] <= 64 for size in network.inputs)
    assert len(network.inputs) == len(window_starts(height, 64, 48, 4)) * len(
        window_starts(width, 64, 48, 4))
    np.testing.assert_allclose(result.probs.sum(axis=0), 1.0, atol=1e-6)  # every cell covered
    # windows start on the output grid: a network whose cells see only their own pixels gives
    # exactly the whole frame's output
    np.testing.assert_array_equal(result.probs, whole.probs)
    np.testing.assert_array_equal(result.features, whole.features)
    assert sliding.num_classes == 2 and sliding.class_names == ('dark', 'red')


def test_model_window_wraps_the_network_with_its_published_windows(monkeypatch, tmp_path):
    entry = WeightsEntry(name='x', kind='hub', source='org/x', backend='hf', window='64x128',
                         trained_short_side=128)
    wrapped = apply_input_settings(RecordingNetwork(), ModelConfig(window='native'), entry)
    assert isinstance(wrapped, SlidingWindowModel) and wrapped.window_hw == (64, 128)
    assert wrapped.input_short_side == 128 and wrapped.trained_short_side == 128
    whole = apply_input_settings(RecordingNetwork(), ModelConfig(window='native'),
                                 replace(entry, window=''))
    assert isinstance(whole, RecordingNetwork)
    sized = apply_input_settings(RecordingNetwork(), ModelConfig(window='32x48'))
    assert sized.window_hw == (32, 48)
    with pytest.raises(ValueError, match="model.window='64': must be empty"):
        ModelConfig(window='64')


def test_load_models_applies_the_settings_to_python_backends():
    model, _ = load_models(ModelConfig(backend='python:fake_models:make_model', refiner='',
                                       input_short_side=200, window='64x64'), False)
    assert isinstance(model, SlidingWindowModel) and model.input_short_side == 200
