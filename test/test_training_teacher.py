"""Refiner training with the per-frame network as teacher, on several sources.

Also the record of the network a Refiner was trained for (``model.refiner: default`` picks the
shipped Refiner of the network in use).

The teacher is a tiny ESPNetv2 (s = 0.5) with random weights saved as a published-style
state_dict; the data are moving textured stripes, as a Cityscapes-layout snippet (labelled) and as
an unlabelled video with a cut in the middle.
"""

import hashlib
import logging
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from evs_ros.config import ModelConfig
from evs_ros.data.cityscapes import write_snippet
from evs_ros.data.video import VideoWriter
from evs_ros.models import loading
from evs_ros.models.backends import DEFAULT_ICNET, DEFAULT_REFINER, load_backend
from evs_ros.models.checkpoint import load_checkpoint
from evs_ros.models.espnet import ESPNetv2
from evs_ros.models.loading import load_models, network_record, shipped_refiners
from evs_ros.models.weights_catalogue import ESPNETV2_S2
from evs_ros.tools.cli import main as evs_main
from evs_ros.training.data import RefinerPairs
from evs_ros.training.losses import masked_segmentation_loss, masked_soft_loss
from evs_ros.training.sources import (
    clip_sequences, fit_to, load_sequences, shot_starts,
)
from evs_ros.training.teacher_cache import TeacherCache
from real_data import real_path, requires_real
from stripes import moving_stripes

torch.set_num_threads(1)
HEIGHT, WIDTH = 48, 96
SHOT_FRAMES = 4


def stripes(count=SHOT_FRAMES, shift_px=2, seed=0, dark=False):
    """Make moving stripes labelled 0..3, with a smooth texture DIS can track.

    ``dark``: another scene for the clip's second shot.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (HEIGHT // 4, (WIDTH + count * shift_px) // 4, 3), np.uint8)
    texture = cv2.resize(coarse, (WIDTH + count * shift_px, HEIGHT),
                         interpolation=cv2.INTER_CUBIC) // (4 if dark else 1)
    return moving_stripes(texture, count, shift_px)


def save_espnet(path, seed):
    torch.manual_seed(seed)
    torch.save(ESPNetv2(0.5).state_dict(), path)
    return f'espnet:{path}'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Write a layout snippet, a video with a cut after frame SHOT_FRAMES, a teacher SPEC."""
    root = tmp_path_factory.mktemp('teacher')
    write_snippet(str(root / 'layout'), 'train', 'stripes', 0, stripes())
    video = str(root / 'clip.mp4')
    with VideoWriter(video, fps=10.0) as writer:
        for frame in stripes(seed=1) + stripes(seed=2, dark=True):  # a cut between the two
            writer.write(frame.image_bgr)
    teacher = save_espnet(str(root / 'espnet_a.pth'), seed=0)
    return SimpleNamespace(root=root, layout=str(root / 'layout'), video=video, teacher=teacher)


def test_shots_split_at_cuts_only():
    rng = np.random.default_rng(0)
    scene_a, scene_b = rng.uniform(0, 255, (2, 16, 32)).astype(np.float32)
    moving = [scene_a + 10.0 * index for index in range(3)]  # a pan: 10 grey levels a frame
    assert shot_starts(moving + [scene_b, scene_b + 5.0]) == [0, 3]
    assert shot_starts([scene_a]) == [0]


def test_fit_keeps_the_aspect_ratio_and_crops_the_centre():
    image = np.arange(40 * 120, dtype=np.uint16).reshape(40, 120)
    fitted = fit_to(image, (20, 40), labels=True)  # x0.5 -> 20x60, centre 40 columns
    assert fitted.shape == (20, 40)
    np.testing.assert_array_equal(fitted, image[::2, ::2][:, 10:50])
    assert fit_to(image, (40, 120)) is not image and fit_to(image, (40, 120)).shape == (40, 120)


def test_clips_are_decoded_once_into_shots(data, tmp_path):
    sequences = clip_sequences(data.video, str(tmp_path))
    assert [len(s.frames) for s in sequences] == [SHOT_FRAMES, SHOT_FRAMES]
    assert all(not s.labels and s.source == f'clips:{data.video}' for s in sequences)
    again = clip_sequences(data.video, str(tmp_path))
    assert again == sequences  # read back from the cache's index
    with pytest.raises(FileNotFoundError, match='clips:nowhere.mp4 does not exist'):
        load_sequences(['clips:nowhere.mp4'], 'train', str(tmp_path))


def either_way(got, expected):
    """``got`` equals ``expected`` or its mirror image (samples are flipped at random)."""
    return np.array_equal(got, expected) or np.array_equal(got, expected[..., ::-1])


def test_targets_per_source(data, tmp_path):
    """Check the targets of each mode; never a pair across the cut.

    auto: ground truth in the labelled source, the teacher's labels in the clip; teacher: the
    teacher everywhere; soft: its probabilities.
    """
    model = load_backend(data.teacher, device='cpu')
    sequences = load_sequences([data.layout, f'clips:{data.video}'], 'train', str(tmp_path))
    pairs = RefinerPairs(sequences, (HEIGHT, WIDTH), model, max_gap=3, targets='auto')
    assert pairs.items == [(number, index) for number in range(3)
                           for index in range(1, SHOT_FRAMES)]  # frame 0 has no predecessor
    _, probs, features, mask, target = pairs[0]  # the snippet's frame 1: its ground truth
    assert probs.shape == (19, HEIGHT // 2, WIDTH // 2) and features.shape[0] == 64
    assert mask.shape == target.shape == (HEIGHT // 2, WIDTH // 2)
    assert either_way(target.numpy(), stripes()[1].labels[::2, ::2].astype(np.int64))
    frame = pairs._frame(sequences[1].frames[2])  # the clip's first shot, frame 2
    teacher_probs = model.predict(frame).probs
    target = pairs[pairs.items.index((1, 2))][4].numpy()
    assert target.dtype == np.int64 and either_way(target, teacher_probs.argmax(axis=0))
    soft = RefinerPairs(sequences, (HEIGHT, WIDTH), model, max_gap=3, targets='teacher',
                        soft_targets=True)
    target = soft[0][4].numpy()  # the snippet's frame 1 now has the teacher's probabilities
    teacher_probs = model.predict(soft._frame(sequences[0].frames[1])).probs
    assert target.dtype == np.float32 and either_way(target, teacher_probs)
    with pytest.raises(ValueError, match='unlabelled video needs --targets teacher'):
        RefinerPairs(sequences[1:], (HEIGHT, WIDTH), model, targets='labels')


def test_soft_loss_is_the_cross_entropy_of_one_hot_targets():
    torch.manual_seed(0)
    logits, mask = torch.randn(2, 5, 6, 8), torch.rand(2, 6, 8)
    labels = torch.randint(0, 5, (2, 6, 8))
    labels[0, :2] = 255
    one_hot = torch.nn.functional.one_hot(labels.clamp_max(4), 5).permute(0, 3, 1, 2).float()
    one_hot[0, :, :2] = 0.0  # ignored pixels: no distribution
    hard = masked_segmentation_loss(logits, labels, mask, 0.1)
    torch.testing.assert_close(masked_soft_loss(logits, one_hot, mask, 0.1), hard)
    teacher = torch.softmax(torch.randn(2, 5, 6, 8), dim=1)
    assert masked_soft_loss(logits, teacher, mask, 0.1) > masked_soft_loss(
        teacher.log(), teacher, mask, 0.1)  # the teacher's own logits are the optimum


class Counting:
    """A model wrapper that counts predictions."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def predict(self, image):
        self.calls += 1
        return self.model.predict(image)


def test_teacher_predictions_are_cached_per_frame_and_size(data, tmp_path):
    model = Counting(load_backend(data.teacher, device='cpu'))
    cache = TeacherCache(model, str(tmp_path), network_record(data.teacher)['sha256'])
    frame_path = os.path.join(str(tmp_path), 'frame.png')
    cv2.imwrite(frame_path, stripes()[0].image_bgr)
    image = cv2.imread(frame_path)
    first = cache.predict(frame_path, image)
    second = cache.predict(frame_path, image)
    assert model.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first.probs, second.probs)
    np.testing.assert_allclose(first.probs, model.model.predict(image).probs, atol=1e-3)
    assert first.features.dtype == np.float32 and first.features.shape[0] == 64
    cache.predict(frame_path, image[:32, :64].copy())  # another sample size: computed again
    assert model.calls == 2
    assert TeacherCache(model, '', '').path_for(frame_path, (4, 4)) is None


def test_train_on_labelled_and_unlabelled_sources_records_the_network(data, tmp_path):
    out, cache = tmp_path / 'refiner.pt', tmp_path / 'cache'
    args = ['train', 'refiner', '--backend', data.teacher, '--data', data.layout,
            '--data', f'clips:{data.video}', '--targets', 'teacher', '--cache', str(cache),
            '--out', str(out), '--epochs', '1', '--batch', '3', '--crop', f'{HEIGHT}x{WIDTH}',
            '--width-mult', '0.25', '--device', 'cpu']
    assert evs_main(args) == 0
    checkpoint = load_checkpoint(str(out), expected_arch='refiner')
    path = data.teacher[len('espnet:'):]
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert checkpoint['meta']['network'] == {'sha256': digest, 'spec': data.teacher,
                                             'name': data.teacher}
    train_config = checkpoint['meta']['train_config']
    assert train_config['data'] == [data.layout, f'clips:{data.video}']
    assert train_config['targets'] == 'teacher'
    cached = [name for _, _, names in os.walk(cache / 'teacher') for name in names]
    assert len(cached) == SHOT_FRAMES * 3  # every frame of the three sequences, once
    assert checkpoint['config']['feature_channels'] == 64
    assert evs_main(args + ['--soft-targets', '--out', str(tmp_path / 'soft.pt')]) == 0
    assert len([n for _, _, names in os.walk(cache / 'teacher') for n in names]) == len(cached)


@pytest.fixture()
def shipped_for_a(data, tmp_path, monkeypatch):
    """Make a weights folder whose only shipped Refiner was trained for teacher A."""
    weights = tmp_path / 'weights'
    weights.mkdir()
    out = weights / 'refiner_espnet_a.pt'
    assert evs_main(['train', 'refiner', '--backend', data.teacher, '--data', data.layout,
                     '--targets', 'teacher', '--cache', str(tmp_path / 'cache'), '--out',
                     str(out), '--epochs', '1', '--batch', '3', '--max-steps', '1', '--crop',
                     f'{HEIGHT}x{WIDTH}', '--width-mult', '0.25', '--device', 'cpu']) == 0
    from evs_ros.models import backends
    monkeypatch.setattr(backends, 'WEIGHTS_DIR', str(weights))
    return out


def test_default_picks_the_shipped_refiner_of_the_network(data, shipped_for_a, tmp_path, caplog):
    config = ModelConfig(backend=data.teacher, refiner='default', device='cpu')
    model, refiner = load_models(config)
    assert refiner is not None and refiner.feature_channels == model.feature_channels == 64
    # Another ESPNetv2 s=0.5: same classes and feature channels, other weights -> no Refiner.
    other = save_espnet(str(tmp_path / 'espnet_b.pth'), seed=1)
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        model, refiner = load_models(ModelConfig(backend=other, refiner='default', device='cpu'))
    assert refiner is None and model.feature_channels == 64
    assert 'the shipped Refiner does not fit' in caplog.text
    assert f'shipped Refiners exist for {data.teacher}' in caplog.text
    # The explicit path still loads wherever classes and channels fit (unchanged rule).
    _, explicit = load_models(ModelConfig(backend=other, refiner=str(shipped_for_a),
                                          device='cpu'))
    assert explicit is not None


def test_every_shipped_refiner_records_its_network():
    records = {os.path.basename(path): record for path, record in shipped_refiners()}
    digest = hashlib.sha256(open(DEFAULT_ICNET, 'rb').read()).hexdigest()
    assert records[os.path.basename(DEFAULT_REFINER)] == {
        'sha256': digest, 'spec': 'icnet:default', 'name': 'the shipped ICNet'}
    espnet = records['refiner_espnetv2_s2_cityscapes.pt']
    assert espnet['sha256'] == ESPNETV2_S2.sha256 and espnet['name'] == ESPNETV2_S2.name
    _, refiner = load_models(ModelConfig(backend='icnet:default', device='cpu'))
    assert refiner is not None and refiner.feature_channels == load_checkpoint(
        DEFAULT_REFINER)['config']['feature_channels']


@requires_real
def test_default_gives_espnetv2_s2_its_shipped_refiner():
    path = real_path('weights', 'espnetv2_s_2.0_city_1024x512.pth')
    model, refiner = load_models(ModelConfig(backend=f'espnet:{path}', device='cpu'))
    assert refiner is not None and refiner.feature_channels == model.feature_channels == 256
    assert loading.shipped_refiner_for(f'espnet:{path}').endswith(
        'refiner_espnetv2_s2_cityscapes.pt')
