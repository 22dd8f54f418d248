"""``model.backend: auto``: the cached real network, else the shipped ICNet with one warning."""

import logging
import shutil

from evs_ros.config import ModelConfig
from evs_ros.models.loading import load_models
from evs_ros.models.weights_catalogue import builtin_catalogue
from local_http import isolate_caches
from real_data import real_path, requires_real


def test_auto_without_a_real_network_runs_the_shipped_one_and_says_what_to_get(
        tmp_path, monkeypatch, caplog):
    isolate_caches(tmp_path, monkeypatch)
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        model, _ = load_models(ModelConfig(), need_refiner=False)
    assert model.backend_spec == 'icnet:default'
    assert 'synthetic' in model.description
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and '`evs weights get espnetv2-s2-cityscapes`' in warnings[0]


@requires_real
def test_auto_runs_the_cached_real_network(tmp_path, monkeypatch, caplog):
    isolate_caches(tmp_path, monkeypatch)
    entry = builtin_catalogue()['espnetv2-s2-cityscapes']
    cached = tmp_path / 'xdg' / 'evs_ros' / entry.name
    cached.mkdir(parents=True)
    shutil.copy(real_path('weights', entry.filename), cached / entry.filename)
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        model, refiner = load_models(ModelConfig(refiner=''), need_refiner=True)
    assert model.backend_spec == 'weights:espnetv2-s2-cityscapes' and refiner is None
    assert type(model).__name__ == 'EspnetModel' and model.num_classes == 19
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any('espnetv2-s2-cityscapes' in r.getMessage() for r in caplog.records)


@requires_real
def test_auto_then_the_engine_runs_the_real_network_at_its_training_scale(
        tmp_path, monkeypatch):
    """Auto resolves to the cached ESPNetv2 and the engine runs it at its training scale.

    The engine (auto: OpenVINO here) builds the graph of the network's training scale (short
    side 512), not the camera's: a 128x256 camera frame reaches the engine as 512x1024.
    """
    from dataclasses import replace

    import numpy as np

    from evs_ros.config import EvsConfig, operating_point
    from evs_ros.models.graph import engine_name, torch_twin
    from evs_ros.pipeline import EvsPipeline
    isolate_caches(tmp_path, monkeypatch)
    entry = builtin_catalogue()['espnetv2-s2-cityscapes']
    cached = tmp_path / 'xdg' / 'evs_ros' / entry.name
    cached.mkdir(parents=True)
    shutil.copy(real_path('weights', entry.filename), cached / entry.filename)
    model_config = ModelConfig(device='cpu', refiner='')
    model, _ = load_models(model_config, need_refiner=False)
    assert model.backend_spec == 'weights:espnetv2-s2-cityscapes'
    assert engine_name(model) in ('openvino', 'onnxruntime')
    config = replace(EvsConfig(), model=model_config, operating_point=operating_point('PERFRAME'))
    frame = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    labels = EvsPipeline(config, model).process(frame).labels
    assert [key.split('x')[-2:] for key in model.runner.built] == [['512', '1024']]
    reference = EvsPipeline(config, torch_twin(model)).process(frame).labels
    assert labels.shape == (128, 256) and (labels == reference).mean() >= 0.995
