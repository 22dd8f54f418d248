"""Real-data evaluation.

CamVid (labelled video), video:DIR snippets, images:DIR frames and the agreement protocol on
unlabelled clips. Layouts are built in tmp_path; the last test uses the real ESPNetv2 and the real
CamVid drive.
"""

import cv2
import numpy as np
import pytest

from evs_ros.config import BASELINE, EvsConfig, operating_point
from evs_ros.data.camvid import CAMVID_CLASSES, TRAIN_ID_TO_CAMVID, list_sequences
from evs_ros.data.labels import CLASS_NAMES, IGNORE, PALETTE_RGB, TRAIN_ID
from evs_ros.data.video import VideoWriter
from evs_ros.evaluation import evaluate
from evs_ros.evaluation.snippets import (
    EvalSnippet, camvid_snippets, list_video_snippets, scoring_for, snippet_source,
    with_perframe_labels,
)
from evs_ros.models.base import Prediction
from real_data import real_path, requires_real


class ConstantModel:
    """Labels every pixel with one Cityscapes trainId."""

    num_classes, class_names, feature_channels = 19, tuple(CLASS_NAMES), None

    def __init__(self, train_id: int):
        self.train_id = train_id

    def predict(self, image_bgr):
        height, width = image_bgr.shape[:2]
        probs = np.full((19, (height + 3) // 4, (width + 3) // 4), 0.01, np.float32)
        probs[self.train_id] = 0.82
        return Prediction(probs=probs)


def write_camvid(root, numbers, height=24, width=32):
    (root / 'val').mkdir(parents=True)
    (root / 'valannot').mkdir()
    for number in numbers:
        name = f'0016E5_{number:05d}.png'
        cv2.imwrite(str(root / 'val' / name), np.full((height, width, 3), 100, np.uint8))
        labels = np.full((height, width), 3, np.uint8)  # Road
        labels[:4] = 11  # void rows
        cv2.imwrite(str(root / 'valannot' / name), labels)


def test_camvid_sequences_split_at_gaps_and_void_is_ignored(tmp_path):
    write_camvid(tmp_path, [1, 3, 5, 9, 11])
    sequences = list_sequences(str(tmp_path), 'val')
    assert [len(s.images) for s in sequences] == [3, 2]
    assert [s.name for s in sequences] == ['0016E5_00001', '0016E5_00009']
    snippet = next(camvid_snippets(str(tmp_path)))
    assert snippet.every_frame_labelled and len(snippet.labels_all) == 3
    assert (snippet.labels_all[0][:4] == IGNORE).all() and (snippet.labels_all[0][4:] == 3).all()


def test_one_table_maps_cityscapes_onto_camvid():
    camvid = {name: index for index, name in enumerate(CAMVID_CLASSES)}
    for cityscapes, expected in (('road', 'Road'), ('wall', 'Building'), ('terrain', 'Tree'),
                                 ('rider', 'Bicyclist'), ('bicycle', 'Bicyclist'),
                                 ('bus', 'Car'), ('traffic light', 'SignSymbol')):
        assert TRAIN_ID_TO_CAMVID[TRAIN_ID[cityscapes]] == camvid[expected]
    assert TRAIN_ID_TO_CAMVID[IGNORE] == IGNORE
    scoring = scoring_for('camvid', CLASS_NAMES)
    assert scoring.class_names == CAMVID_CLASSES
    with pytest.raises(ValueError, match='Cityscapes trainIds'):
        scoring_for('camvid', ['a', 'b'])


def test_labelled_video_scores_every_frame_from_a_keyframe_at_frame_0(tmp_path):
    write_camvid(tmp_path, range(1, 20, 2))  # 10 frames
    snippets, count, described = snippet_source(f'camvid:{tmp_path}')
    assert count == 1 and described['kind'] == 'camvid'
    report = evaluate(snippets, ConstantModel(TRAIN_ID['road']), None,
                      [operating_point('EVS05')], EvsConfig(),
                      scoring=scoring_for('camvid', CLASS_NAMES))
    for entry in report['operating_points']:
        assert entry['frames'] == 10 and entry['miou'] == 1.0
    evs05 = report['operating_points'][1]
    assert evs05['keyframes'] == 4  # frames 0, 3, 6, 9
    assert report['scored_classes'] == list(CAMVID_CLASSES)


def test_video_snippets_find_the_annotated_frame_by_number(tmp_path):
    with VideoWriter(str(tmp_path / 'city_000001_000100.mp4'), fps=17.0) as writer:
        for _ in range(25):
            writer.write(np.full((32, 64, 3), 90, np.uint8))
    color = np.zeros((32, 64, 3), np.uint8)
    color[:] = PALETTE_RGB[TRAIN_ID['road']]
    cv2.imwrite(str(tmp_path / 'city_000001_000119_gtFine_color.png'), color[:, :, ::-1])
    (name, path, index, gt_path), = list_video_snippets(str(tmp_path))
    assert name == 'city_000001_000100' and index == 19 and gt_path.endswith('color.png')
    snippet = next(snippet_source(f'video:{tmp_path}')[0])
    assert len(snippet.frames) == 25 and (snippet.gt_labels == TRAIN_ID['road']).all()
    with pytest.raises(FileNotFoundError, match='no CITY_SEQ_FIRST.mp4'):
        list_video_snippets(str(tmp_path / 'nothing'))


def test_images_are_one_frame_snippets(tmp_path):
    cv2.imwrite(str(tmp_path / 'x_000001_000002_leftImg8bit.png'), np.zeros((16, 32, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'x_000001_000002_gtFine_labelTrainIds.png'),
                np.full((16, 32), 10, np.uint8))
    snippets, count, _ = snippet_source(f'images:{tmp_path}')
    snippet = next(snippets)
    assert count == 1 and len(snippet.frames) == 1 and snippet.scored()[0].max() == 10


def test_agreement_reference_is_exactly_the_perframe_output(textured_frames):
    snippet = EvalSnippet('clip', textured_frames, None, -1)
    model = ConstantModel(TRAIN_ID['car'])
    labelled = next(with_perframe_labels([snippet], model))
    assert labelled.every_frame_labelled and len(labelled.labels_all) == len(textured_frames)
    report = evaluate([labelled], model, None, [operating_point('EVS05')], EvsConfig())
    perframe = report['operating_points'][0]
    assert perframe['name'] == BASELINE.name and perframe['pixel_accuracy'] == 1.0


@requires_real
def test_evs05_with_espnetv2_agrees_with_perframe_on_a_real_drive():
    """EVS05's labels agree with per-frame ESPNetv2's on >= 85 % of pixels of a real drive.

    The first 24 frames of the real CamVid drive (480x360, 15 Hz), ESPNetv2 s=2.0 as the keyframe
    network.
    """
    from evs_ros.models.backends import load_backend
    from evs_ros.pipeline.pipeline import EvsPipeline
    model = load_backend('espnet:' + real_path('weights', 'espnetv2_s_2.0_city_1024x512.pth'),
                         'cpu')
    frames = [cv2.imread(p) for p in list_sequences(real_path('camvid'), 'val')[0].images[:24]]
    snippet = next(with_perframe_labels([EvalSnippet('0016E5', frames, None, -1)], model))
    pipeline = EvsPipeline(EvsConfig(operating_point=operating_point('EVS05')), model)
    results = [pipeline.process(frame) for frame in frames]
    assert sum(r.info.keyframe for r in results) == 8
    agreement = np.mean([np.mean(r.labels == reference)
                         for r, reference in zip(results, snippet.labels_all)])
    assert agreement >= 0.85, agreement
