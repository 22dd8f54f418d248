"""Class lists: Cityscapes trainId mapping, generated palettes, class-names files."""

import numpy as np
import pytest

from evs_ros.data.classes import (class_key, class_mapping, class_palette, classes_file_for,
                                  cityscapes_source_index, default_class_names,
                                  generated_palette, read_class_names, sidecar_class_names)
from evs_ros.data.labels import CLASS_NAMES, PALETTE_RGB, TRAIN_ID


def scrambled(names, seed=0):
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[index] for index in order], order


def one_hot(num_classes, index, shape=(2, 3)):
    probs = np.zeros((num_classes,) + shape, np.float32)
    probs[index] = 1.0
    return probs


def test_class_key_ignores_case_and_separators():
    assert class_key('Traffic_Light') == class_key('traffic-light') == class_key('TRAFFIC LIGHT')
    assert class_key('traffic light') != class_key('traffic sign')


def test_cityscapes_order_is_identity():
    mapping = class_mapping(CLASS_NAMES, 19)
    assert mapping.cityscapes and mapping.is_identity and mapping.names == CLASS_NAMES
    probs = one_hot(19, 3)
    assert mapping.apply(probs) is probs


def test_scrambled_cityscapes_names_map_every_class_to_its_train_id():
    names, _ = scrambled([name.upper().replace(' ', '_') for name in CLASS_NAMES])
    mapping = class_mapping(names, 19)
    assert mapping.cityscapes and mapping.names == CLASS_NAMES and not mapping.dropped
    for channel, name in enumerate(names):
        train_id = TRAIN_ID[name.lower().replace('_', ' ')]
        assert mapping.apply(one_hot(19, channel)).argmax(axis=0).tolist() == \
            [[train_id] * 3] * 2


def test_extra_classes_are_dropped_and_probabilities_renormalised():
    names, _ = scrambled(list(CLASS_NAMES) + ['unlabeled', 'ego vehicle'], seed=2)
    mapping = class_mapping(names, 21)
    assert mapping.names == CLASS_NAMES and sorted(mapping.dropped) == ['ego vehicle',
                                                                        'unlabeled']
    probs = np.random.default_rng(0).dirichlet(np.ones(21), size=(4, 5)).transpose(2, 0, 1)
    published = mapping.apply(probs.astype(np.float32))
    assert published.shape == (19, 4, 5)
    np.testing.assert_allclose(published.sum(axis=0), 1.0, atol=1e-5)
    road = names.index('road')
    kept = probs.sum(axis=0) - sum(probs[names.index(n)] for n in mapping.dropped)
    np.testing.assert_allclose(published[TRAIN_ID['road']], probs[road] / kept, rtol=1e-5)


@pytest.mark.parametrize('names', [
    list(CLASS_NAMES[:18]) + ['robot'],           # one Cityscapes class missing
    list(CLASS_NAMES) + ['Car'],                  # one listed twice
])
def test_other_lists_keep_their_own_order(names):
    mapping = class_mapping(names, len(names))
    assert cityscapes_source_index(names) is None
    assert mapping.is_identity and mapping.names == tuple(names) and not mapping.cityscapes


def test_defaults_and_count_mismatch():
    assert class_mapping(None, 19).names == CLASS_NAMES == default_class_names(19)
    assert class_mapping(None, 3).names == ('class_0', 'class_1', 'class_2')
    with pytest.raises(ValueError, match='2 class names for a network with 3'):
        class_mapping(['a', 'b'], 3)


def test_generated_palette_is_deterministic_distinct_and_never_black():
    colors = generated_palette(255)
    np.testing.assert_array_equal(colors, generated_palette(255))
    np.testing.assert_array_equal(colors[:19], generated_palette(19))
    assert colors.dtype == np.uint8 and colors.shape == (255, 3)
    for count, min_distance in ((19, 116), (255, 33)):
        part = colors[:count].astype(float)
        distance = np.linalg.norm(part[:, None] - part[None], axis=2) + np.eye(count) * 1e9
        assert distance.min() >= min_distance
        assert np.linalg.norm(part, axis=1).min() >= min_distance  # away from black (ignore)


def test_class_palette_keeps_cityscapes_colours_and_generates_the_rest():
    np.testing.assert_array_equal(class_palette(CLASS_NAMES), PALETTE_RGB)
    names = ['floor', 'Person', 'robot', 'sky']
    colors = class_palette(names)
    np.testing.assert_array_equal(colors[1], PALETTE_RGB[TRAIN_ID['person']])
    np.testing.assert_array_equal(colors[3], PALETTE_RGB[TRAIN_ID['sky']])
    generated, known = colors[[0, 2]].astype(float), colors[[1, 3]].astype(float)
    assert np.linalg.norm(generated[:, None] - known[None], axis=2).min() > 100
    assert len({tuple(color) for color in colors}) == 4


def test_class_names_files(tmp_path):
    model = tmp_path / 'ddrnet.onnx'
    assert classes_file_for(str(model)) == str(tmp_path / 'ddrnet.classes.txt')
    assert sidecar_class_names(str(model)) is None
    (tmp_path / 'ddrnet.classes.txt').write_text('# channel order\nroad\n\n  traffic light \n')
    assert sidecar_class_names(str(model)) == ('road', 'traffic light')
    (tmp_path / 'empty.classes.txt').write_text('# nothing\n')
    with pytest.raises(ValueError, match='lists no class'):
        read_class_names(str(tmp_path / 'empty.classes.txt'))
