"""Tests for the Cityscapes layout reader/writer and the label tables."""

import json
import os

import numpy as np
import pytest
from cityscapesscripts.helpers import labels as official

from evs_ros.data import cityscapes, labels
from evs_ros.data.synth import SynthFrame


def test_tables_match_official_cityscapes_definition():
    train = sorted((label for label in official.labels if 0 <= label.trainId < 255),
                   key=lambda label: label.trainId)
    assert tuple(label.name for label in train) == labels.CLASS_NAMES
    np.testing.assert_array_equal([label.color for label in train], labels.PALETTE_RGB)
    np.testing.assert_array_equal([label.id for label in train], labels.TRAIN_ID_TO_LABEL_ID)
    for label in official.labels:
        if label.id >= 0:
            expected = label.trainId if 0 <= label.trainId < 255 else labels.IGNORE
            assert labels.label_ids_to_train_ids(np.uint8(label.id)) == expected, label.name


def test_train_ids_round_trip_and_colorize():
    train_ids = np.array([[0, 5, 18], [labels.IGNORE, 10, 13]], np.uint8)
    back = labels.label_ids_to_train_ids(labels.train_ids_to_label_ids(train_ids))
    np.testing.assert_array_equal(back, train_ids)
    rgb = labels.colorize(train_ids)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 1], labels.PALETTE_RGB[5])
    np.testing.assert_array_equal(rgb[1, 0], (0, 0, 0))


@pytest.mark.parametrize('suffix', ['.yaml', '.json'])
def test_load_palette(tmp_path, suffix):
    path = tmp_path / f'palette{suffix}'
    content = {'names': ['floor', 'obstacle'], 'colors': [[1, 2, 3], [250, 0, 9]]}
    path.write_text(json.dumps(content))  # JSON is also valid YAML
    names, colors = labels.load_palette(str(path))
    assert names == ['floor', 'obstacle']
    np.testing.assert_array_equal(colors, [[1, 2, 3], [250, 0, 9]])
    path.write_text(json.dumps({'names': ['a'], 'colors': [[1, 2]]}))
    with pytest.raises(ValueError):
        labels.load_palette(str(path))


def _frames(rng, count, shape=(8, 12)):
    for _ in range(count):
        yield SynthFrame(image_bgr=rng.integers(0, 256, shape + (3,), dtype=np.uint8),
                         labels=rng.integers(0, 19, shape).astype(np.uint8),
                         flow_cur_to_prev=rng.normal(0, 3, shape + (2,)).astype(np.float32),
                         valid=rng.random(shape) < 0.5)


def test_write_read_round_trip(tmp_path):
    frames = list(_frames(np.random.default_rng(0), 30))
    cityscapes.write_snippet(str(tmp_path), 'val', 'synthval', 3, iter(frames), write_flow=True)
    cityscapes.write_snippet(str(tmp_path), 'val', 'synthval', 1,
                             _frames(np.random.default_rng(1), 2))
    snippets = cityscapes.list_snippets(str(tmp_path), 'val')
    assert [(s.city, s.seq) for s in snippets] == [('synthval', 1), ('synthval', 3)]
    snippet = snippets[1]
    assert len(snippet.frames) == 30 and snippet.annotated_index == 19
    assert snippet.frames[7].endswith('synthval_000003_000007_leftImg8bit.png')
    assert sorted(snippet.labels) == list(range(30))
    assert sorted(snippet.flows) == list(range(1, 30))
    for index in (0, 19, 29):
        np.testing.assert_array_equal(cityscapes.read_image(snippet.frames[index]),
                                      frames[index].image_bgr)
        np.testing.assert_array_equal(cityscapes.read_labels(snippet.labels[index]),
                                      frames[index].labels)
    flow = cityscapes.read_flow(snippet.flows[5])
    np.testing.assert_allclose(flow['flow_cur_to_prev'], frames[5].flow_cur_to_prev, atol=0.01)
    np.testing.assert_array_equal(flow['valid'], frames[5].valid)
    assert snippets[0].flows == {} and snippets[0].annotated_index == 1


def test_real_cityscapes_layout_two_snippets_in_one_sequence(tmp_path):
    frames = list(_frames(np.random.default_rng(2), 60))
    snippet = cityscapes.write_snippet(str(tmp_path), 'train', 'aachen', 0, iter(frames))
    image_dir = tmp_path / 'leftImg8bit_sequence' / 'train' / 'aachen'
    for index in range(30, 60):  # renumber the second half to frames 300..329
        old = image_dir / f'aachen_000000_{index:06d}_leftImg8bit.png'
        old.rename(image_dir / f'aachen_000000_{index + 270:06d}_leftImg8bit.png')
    for index, path in list(snippet.labels.items()):  # keep only labelIds of frames 19 and 49
        os.unlink(path)
        label_ids = path.replace('labelTrainIds', 'labelIds')
        if index == 49:
            os.rename(label_ids, label_ids.replace('000049', '000319'))
        elif index != 19:
            os.unlink(label_ids)
    first, second = cityscapes.list_snippets(str(tmp_path), 'train')
    assert first.frame_numbers == list(range(30)) and second.frame_numbers[0] == 300
    for found, source in ((first, 19), (second, 49)):
        assert len(found.frames) == 30 and found.annotated_index == 19
        assert list(found.labels) == [19] and found.labels[19].endswith('_labelIds.png')
        np.testing.assert_array_equal(cityscapes.read_labels(found.labels[19]),
                                      frames[source].labels)


def test_missing_dataset_and_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='leftImg8bit_sequence'):
        cityscapes.list_snippets(str(tmp_path), 'val')
    with pytest.raises(IOError):
        cityscapes.read_image(str(tmp_path / 'missing.png'))
    with pytest.raises(IOError):
        cityscapes.read_labels(str(tmp_path / 'missing.png'))
