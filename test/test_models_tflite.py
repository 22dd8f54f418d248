"""``tflite:PATH``: Coral's int8 DeepLab reproduces its reference mask, runs labels-only in EVS."""

import logging

import cv2
import numpy as np
import pytest

from evs_ros.config import EvsConfig, ModelConfig, operating_point
from evs_ros.data.camvid import list_sequences
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.models.backends import load_backend
from evs_ros.models.loading import load_models
from evs_ros.models.tflite import _nearest_centre_spans, square_tiles
from evs_ros.pipeline.pipeline import EvsPipeline
from real_data import real_path, requires_real

DEEPLAB = real_path('weights', 'deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite')


def test_square_tiles_cover_evenly_and_centres_split_the_overlap():
    assert square_tiles(513, 513) == [0]
    assert square_tiles(1026, 513) == [0, 513]
    assert square_tiles(684, 513) == [0, 171]
    assert square_tiles(1500, 513) == [0, 494, 987]
    spans = _nearest_centre_spans([0, 171], 513, 684)
    assert spans == [(0, 0, 342), (171, 342, 684)]


@requires_real
def test_deeplab_reproduces_its_reference_mask():
    """Coral's test input (513x513) and expected mask.

    92.0 % of the pixels agree (Coral's own test asks 0.84 of its overlap measure agreement / (2 -
    agreement) = 0.85 here).
    """
    model = load_backend(f'tflite:{DEEPLAB}')
    image = cv2.imread(real_path('coral', 'cityscapes_segmentation.bmp'))
    expected = cv2.imread(real_path('coral', 'cityscapes_segmentation_mask.bmp'),
                          cv2.IMREAD_UNCHANGED)
    probs = model.predict(image).probs
    assert model.labels_only and model.class_names == tuple(CLASS_NAMES)
    assert np.array_equal(probs.sum(axis=0), np.ones(probs.shape[1:], np.float32))
    labels = cv2.resize(probs.argmax(0).astype(np.uint8), expected.shape[::-1],
                        interpolation=cv2.INTER_NEAREST)
    agreement = float(np.mean(labels == expected))
    assert agreement >= 0.91
    assert agreement / (2.0 - agreement) > 0.84


@requires_real
def test_labels_only_network_runs_w_and_iam_with_r_off(caplog):
    config = EvsConfig(model=ModelConfig(backend=f'tflite:{DEEPLAB}', refiner='default'),
                       operating_point=operating_point('EVS06'))
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        model, refiner = load_models(config.model, need_refiner=True)
    assert refiner is None
    assert 'R (the Refiner) needs probabilities' in caplog.text
    pipeline = EvsPipeline(config, model, refiner)
    frames = [cv2.imread(path) for path in
              list_sequences(real_path('camvid'), 'val')[0].images[:4]]
    results = [pipeline.process(frame) for frame in frames]
    assert [r.info.keyframe for r in results] == [True, False, False, False]
    assert all(r.labels.shape == (360, 480) for r in results)
    propagated = results[2]
    assert not propagated.info.refined and 0.0 <= propagated.info.inconsistent_fraction < 0.5
    assert np.mean(results[3].labels == results[0].labels) > 0.8


def test_a_model_without_a_runtime_or_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / 'bad.tflite'
    bad.write_bytes(b'not a flatbuffer')
    with pytest.raises(ValueError, match='is not a TFLite model') as error:
        load_backend(f'tflite:{bad}')
    assert '\n' not in str(error.value) and str(bad) in str(error.value)
