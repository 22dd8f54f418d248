"""The hf:MODEL backend: tiny random SegFormer, UperNet and Mask2Former saved to temp dirs.

Shapes and strides, preprocessing against transformers' own processors, class mapping shown by
predicted trainIds, offline hub-id resolution and the bad-input errors; end to end through
EvsPipeline (W and R on/off) and EvsRuntime.
"""

import json
import os
import time

import cv2
import numpy as np
import pytest
import torch

from evs_ros.config import EvsConfig, OperatingPoint
from evs_ros.data.labels import CLASS_NAMES, TRAIN_ID
from evs_ros.models import load_backend
from evs_ros.models.backends import split_spec
from evs_ros.models.hf import HfSegmentationModel, mask_queries_to_probs, read_preprocessing
from evs_ros.models.hf_hub import hf_cache_dir
from evs_ros.models.refiner import RefinerNet, TorchRefiner
from evs_ros.pipeline import EvsPipeline, EvsRuntime
from tiny_hf import (FEATURE_CHANNELS, HAS_SCIPY, PROCESSOR_MEAN, PROCESSOR_STD,
                     build_tiny_model, reference_processor, save_old_way, save_tiny_model)

torch.set_num_threads(1)
NEEDS_SCIPY = pytest.mark.skipif(not HAS_SCIPY, reason='Mask2Former needs scipy in transformers')
FAMILIES = ['segformer', 'upernet', pytest.param('mask2former', marks=NEEDS_SCIPY)]
ALL_FAMILIES = FAMILIES + [pytest.param('maskformer', marks=NEEDS_SCIPY)]
HEIGHT, WIDTH = 64, 128
OWN_NAMES = {0: 'floor', 1: 'wall', 2: 'robot', 3: 'person', 4: 'sky'}


@pytest.fixture(scope='module')
def model_dirs(tmp_path_factory):
    """Map family -> saved tiny model with 5 non-Cityscapes classes (built on first use)."""
    cache = {}

    def get(family):
        if family not in cache:
            directory = tmp_path_factory.mktemp(family)
            cache[family] = save_tiny_model(family, directory, id2label=OWN_NAMES)
        return cache[family]
    return get


def image(height=HEIGHT, width=WIDTH, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('family', ALL_FAMILIES)
@pytest.mark.parametrize('height, width', [(64, 128), (70, 130)])
def test_predict_shapes_sums_and_stride(model_dirs, family, height, width):
    model = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    assert isinstance(model, HfSegmentationModel) and model.family == family
    assert model.num_classes == 5 and model.class_names == tuple(OWN_NAMES.values())
    assert model.feature_channels == FEATURE_CHANNELS[family]
    prediction = model.predict(image(height, width))
    cells = (-(-height // 4), -(-width // 4))  # stride 4, the frame's own aspect ratio
    assert prediction.probs.dtype == np.float32 and prediction.probs.shape == (5,) + cells
    np.testing.assert_allclose(prediction.probs.sum(axis=0), 1.0, atol=1e-5)
    assert prediction.probs.min() >= 0.0
    assert prediction.features.dtype == np.float32
    assert prediction.features.shape == (FEATURE_CHANNELS[family],) + cells


@pytest.mark.parametrize('family', ['segformer', pytest.param('mask2former', marks=NEEDS_SCIPY)])
def test_input_is_rescaled_normalised_rgb_padded_with_the_mean(model_dirs, family):
    model = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    frame = image(70, 130)
    rgb = frame[..., ::-1].astype(np.float64) / 255.0
    expected = ((rgb - PROCESSOR_MEAN) / PROCESSOR_STD).transpose(2, 0, 1)[None]
    ours = model.prepare(frame).numpy()
    divisor = {'segformer': 1, 'mask2former': 32}[family]
    assert ours.shape == (1, 3, -(-70 // divisor) * divisor, -(-130 // divisor) * divisor)
    np.testing.assert_allclose(ours[..., :70, :130], expected, atol=1e-5)
    assert not ours[..., 70:, :].any() and not ours[..., 130:].any()  # padded with the mean


@pytest.mark.parametrize('family', ['segformer', pytest.param('mask2former', marks=NEEDS_SCIPY)])
def test_input_matches_the_models_own_processor(model_dirs, family):
    model = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    assert model.preprocessing.mean_rgb == pytest.approx(PROCESSOR_MEAN)
    assert model.preprocessing.std_rgb == pytest.approx(PROCESSOR_STD)
    try:
        processor = reference_processor(model_dirs(family))
    except ImportError as error:  # e.g. transformers 5.20's SegFormer processor needs torchvision
        pytest.skip(f'transformers cannot build its own {family} processor here: '
                    f'{str(error).strip().splitlines()[0]}')
    frame = image(70, 130)
    reference = processor(images=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), do_resize=False,
                          return_tensors='pt')['pixel_values']
    np.testing.assert_allclose(model.prepare(frame).numpy()[..., :70, :130], reference.numpy(),
                               atol=1e-5)


@pytest.mark.parametrize('family', ['segformer', pytest.param('mask2former', marks=NEEDS_SCIPY)])
def test_a_checkpoint_saved_the_old_way_predicts_the_same(model_dirs, tmp_path, family):
    """A checkpoint saved the old way is the same network as saved now.

    Old way: transformers 4 key names, pytorch_model.bin, the 2021 processor config and
    (Mask2Former) without the swin.layernorm weights the published checkpoint lacks.
    """
    old = load_backend(f'hf:{save_old_way(family, tmp_path, id2label=OWN_NAMES)}', device='cpu')
    new = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    assert old.preprocessing.mean_rgb == pytest.approx(PROCESSOR_MEAN)
    assert old.preprocessing.size_divisor == {'segformer': 1, 'mask2former': 32}[family]
    frame = image(70, 130)
    np.testing.assert_allclose(old.predict(frame).probs, new.predict(frame).probs, atol=1e-6)


def test_transformers4_key_names_are_the_recorded_ones(tmp_path):
    """save_old_way writes exactly the key names transformers 4.57 wrote for these configs."""
    with open(os.path.join(os.path.dirname(__file__), 'data', 'transformers4_keys.json')) as f:
        recorded = json.load(f)
    for family in ('segformer', 'mask2former'):
        directory = save_old_way(family, tmp_path / family)
        keys = torch.load(os.path.join(directory, 'pytorch_model.bin'), weights_only=True)
        assert sorted(keys) == recorded[family], family


@NEEDS_SCIPY
def test_a_missing_weight_not_marked_ignorable_is_refused(tmp_path):
    directory = save_old_way('mask2former', tmp_path, id2label=OWN_NAMES)
    path = os.path.join(directory, 'pytorch_model.bin')
    state_dict = torch.load(path, weights_only=True)
    lost = 'model.pixel_level_module.encoder.embeddings.norm.weight'
    del state_dict[lost]
    torch.save(state_dict, path)
    with pytest.raises(ValueError, match='is incomplete: 1 weights') as error:
        load_backend(f'hf:{directory}', device='cpu')
    assert 'embeddings.norm.weight' in str(error.value) and '\n' not in str(error.value)


def test_segformer_probs_are_the_softmax_of_its_logits(model_dirs):
    model = load_backend(f'hf:{model_dirs("segformer")}', device='cpu')
    frame = image()
    with torch.inference_mode():
        logits = model.network(pixel_values=model.prepare(frame)).logits
    expected = torch.softmax(logits, dim=1)[0].numpy()
    np.testing.assert_allclose(model.predict(frame).probs, expected, atol=1e-6)


def test_missing_processor_config_uses_imagenet_and_says_so(model_dirs, caplog):
    directory = model_dirs('upernet')
    assert not os.path.exists(os.path.join(directory, 'preprocessor_config.json'))
    with caplog.at_level('WARNING', logger='evs_ros'):
        preprocessing = read_preprocessing(directory, 'upernet')
    assert preprocessing.mean_rgb == pytest.approx((0.485, 0.456, 0.406))
    assert preprocessing.size_divisor == 32 and 'ImageNet' in preprocessing.source
    assert any('ImageNet' in record.getMessage() for record in caplog.records)


def test_mask_queries_become_class_probabilities():
    class_logits = torch.full((1, 2, 4), -20.0)  # 2 queries, 3 classes + no-object
    class_logits[0, 0, 1] = 20.0                   # query 0 says class 1
    class_logits[0, 1, 2] = 20.0                   # query 1 says class 2
    mask_logits = torch.full((1, 2, 2, 3), -20.0)
    mask_logits[0, 0, :, :2] = 20.0                # query 0 covers columns 0-1
    mask_logits[0, 1, :, 2] = 20.0                 # query 1 covers column 2
    probs = mask_queries_to_probs(class_logits, mask_logits)
    assert probs.shape == (1, 3, 2, 3)
    np.testing.assert_allclose(probs.sum(dim=1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probs.argmax(dim=1)[0].numpy(), [[1, 1, 2], [1, 1, 2]])


def shuffled_cityscapes(extra=()):
    """id2label with the Cityscapes names shuffled, in odd spellings, plus ``extra`` names."""
    names = list(CLASS_NAMES) + list(extra)
    order = np.random.default_rng(1).permutation(len(names))
    spellings = [names[index].upper() if index % 2 else names[index].replace(' ', '_')
                 for index in order]
    return dict(enumerate(spellings))


@pytest.mark.parametrize('family', ALL_FAMILIES)
def test_cityscapes_model_in_any_order_outputs_train_ids(tmp_path, family):
    id2label = shuffled_cityscapes()
    car = next(index for index, name in id2label.items() if name.lower() == 'car')
    directory = save_tiny_model(family, tmp_path, id2label=id2label, predict_class=car)
    model = load_backend(f'hf:{directory}', device='cpu')
    assert model.class_names == CLASS_NAMES and model.num_classes == 19
    labels = model.predict(image()).probs.argmax(axis=0)
    assert car != TRAIN_ID['car'] and np.all(labels == TRAIN_ID['car'])


def test_extra_classes_of_a_cityscapes_model_are_dropped(tmp_path):
    id2label = shuffled_cityscapes(extra=('unlabeled', 'license plate'))
    truck = next(index for index, name in id2label.items() if name.lower() == 'truck')
    directory = save_tiny_model('segformer', tmp_path, id2label=id2label, predict_class=truck)
    model = load_backend(f'hf:{directory}', device='cpu')
    assert model.num_classes == 19 and model.class_names == CLASS_NAMES
    dropped = sorted(name.lower().replace('_', ' ') for name in model.mapping.dropped)
    assert dropped == ['license plate', 'unlabeled']
    probs = model.predict(image()).probs
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert np.all(probs.argmax(axis=0) == TRAIN_ID['truck'])


@pytest.mark.parametrize('family', FAMILIES)
def test_other_model_outputs_its_own_ids_and_names(tmp_path, family):
    directory = save_tiny_model(family, tmp_path, id2label=OWN_NAMES, predict_class=2)
    model = load_backend(f'hf:{directory}', device='cpu')
    assert model.class_names == ('floor', 'wall', 'robot', 'person', 'sky')
    assert np.all(model.predict(image()).probs.argmax(axis=0) == 2)  # 'robot'


def hub_cache(root, hub_id, model_dir):
    """Lay ``model_dir`` out as the cached snapshot of ``hub_id`` under ``root``/hub."""
    commit = '0123456789abcdef0123456789abcdef01234567'
    repo = root / 'hub' / ('models--' + hub_id.replace('/', '--'))
    snapshot = repo / 'snapshots' / commit
    snapshot.mkdir(parents=True)
    for name in os.listdir(model_dir):
        os.link(os.path.join(model_dir, name), snapshot / name)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(commit)


@pytest.fixture
def offline_hf_home(tmp_path, monkeypatch):
    for name in ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf_home'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    return tmp_path / 'hf_home'


def test_cached_hub_id_resolves_offline(offline_hf_home, model_dirs):
    hub_cache(offline_hf_home, 'evs-test/tiny-segformer', model_dirs('segformer'))
    assert hf_cache_dir() == str(offline_hf_home / 'hub')
    model = load_backend('hf:evs-test/tiny-segformer', device='cpu')
    assert model.family == 'segformer' and model.num_classes == 5


def test_uncached_hub_id_says_how_to_fill_the_cache(offline_hf_home):
    with pytest.raises(FileNotFoundError) as error:
        load_backend('hf:nvidia/segformer-b0-finetuned-cityscapes-1024-1024', device='cpu')
    message = str(error.value)
    assert '\n' not in message
    assert 'evs weights get nvidia/segformer-b0-finetuned-cityscapes-1024-1024' in message
    assert str(offline_hf_home / 'hub') in message
    assert not (offline_hf_home / 'hub').exists() or not any((offline_hf_home / 'hub').iterdir())


def test_directory_without_config_is_named(tmp_path):
    (tmp_path / 'model.safetensors').write_bytes(b'')
    with pytest.raises(FileNotFoundError, match='has no config.json') as error:
        load_backend(f'hf:{tmp_path}', device='cpu')
    assert '\n' not in str(error.value)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_backend(f'hf:{tmp_path / "missing" / "model"}', device='cpu')


def test_models_without_a_semantic_head_are_refused(tmp_path):
    import transformers
    encoder = build_tiny_model('segformer')
    encoder_only = transformers.SegformerModel(encoder.config)
    encoder_only.save_pretrained(tmp_path / 'encoder')           # architectures: SegformerModel
    with pytest.raises(ValueError, match='has no semantic segmentation head') as error:
        load_backend(f'hf:{tmp_path / "encoder"}', device='cpu')
    assert '\n' not in str(error.value) and 'SegformerModel' in str(error.value)
    config_path = tmp_path / 'encoder' / 'config.json'
    config = json.loads(config_path.read_text())
    config.pop('architectures')                                   # only the weights tell
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match='has no semantic segmentation head'):
        load_backend(f'hf:{tmp_path / "encoder"}', device='cpu')
    transformers.ViTConfig(num_labels=3).save_pretrained(tmp_path / 'classifier')
    with pytest.raises(ValueError, match="model_type 'vit'.* no semantic segmentation head"):
        load_backend(f'hf:{tmp_path / "classifier"}', device='cpu')


def test_spec_accepts_hf():
    assert split_spec('hf:nvidia/segformer-b0') == ('hf', 'nvidia/segformer-b0')
    with pytest.raises(ValueError, match='hf:MODEL'):
        split_spec('hf:')


def moving_frames(count=6, shift_px=2, seed=3):
    """uint8 (H, W, 3) frames of a smooth texture panning right by ``shift_px`` per frame."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH + 64, 3)).astype(np.float32),
                             (0, 0), 3.0)
    noise = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return [np.ascontiguousarray(noise[:, index * shift_px:index * shift_px + WIDTH])
            for index in range(count)]


def refiner_for(model):
    return TorchRefiner(RefinerNet(model.num_classes, model.feature_channels, width_mult=0.25,
                                   residual=True), device='cpu')


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('warp, refine', [(False, False), (True, False), (True, True)])
def test_pipeline_end_to_end(model_dirs, family, warp, refine):
    model = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    op = OperatingPoint(name='T', keyframe_interval=3, warp=warp, refine=refine)
    pipeline = EvsPipeline(EvsConfig(operating_point=op), model, refiner_for(model))
    results = [pipeline.process(frame, stamp_ns=index)
               for index, frame in enumerate(moving_frames())]
    assert [r.info.keyframe for r in results] == [True, False, False, True, False, False]
    expected_refined = [refine and not r.info.keyframe for r in results]
    assert [r.info.refined for r in results] == expected_refined
    for result in results:
        assert result.labels.shape == (HEIGHT, WIDTH) and result.labels.max() < 5
        if result.probs is not None:  # None: propagated without refinement (not warped)
            assert result.probs.shape == (5, HEIGHT // 4, WIDTH // 4)
            np.testing.assert_allclose(result.probs.sum(axis=0), 1.0, atol=1e-4)
    assert all(r.probs is not None for r in results if r.info.keyframe or r.info.refined)
    keyframe_labels = model.predict(moving_frames()[0]).probs.argmax(axis=0)
    np.testing.assert_array_equal(results[0].labels[::4, ::4], keyframe_labels)


@pytest.mark.parametrize('family', FAMILIES)
def test_runtime_end_to_end_with_refiner(model_dirs, family):
    model = load_backend(f'hf:{model_dirs(family)}', device='cpu')
    op = OperatingPoint(name='T', keyframe_interval=3, warp=True, refine=True)
    runtime = EvsRuntime(EvsConfig(operating_point=op), model, refiner_for(model))
    results = []
    stream = runtime.add_stream('cam', results.append)
    for index, frame in enumerate(moving_frames()):
        assert stream.submit(frame, stamp_ns=index)
        deadline = time.monotonic() + 20.0
        while len(results) < index + 1:
            assert time.monotonic() < deadline, 'no output in time'
            time.sleep(0.005)
    assert [r.info.keyframe for r in results] == [i % 3 == 0 for i in range(6)]
    assert all(r.info.refined for r in results if not r.info.keyframe)
    assert all(r.labels.shape == (HEIGHT, WIDTH) for r in results)
    assert runtime.stats()['cam']['errors'] == 0
    assert runtime.close()
