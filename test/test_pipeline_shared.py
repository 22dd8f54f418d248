"""Runtimes shared in one process (a component container).

One network per model config, warmed up before it is handed out, closed by its last user.
"""

import numpy as np
import pytest

from evs_ros.config import EvsConfig, config_from_flat
from evs_ros.models.base import Prediction
from evs_ros.pipeline.shared import RuntimePool, warm_up


class RecordingModel:
    num_classes = 3

    def __init__(self, log):
        self.log = log
        log.append('built')

    def predict(self, image_bgr):
        self.log.append(f'predict {image_bgr.shape[1]}x{image_bgr.shape[0]}')
        return Prediction(np.full((3, 2, 4), 1 / 3, np.float32))


@pytest.fixture
def log(monkeypatch):
    events = []
    monkeypatch.setattr('evs_ros.models.loading.load_models',
                        lambda model_config, need_refiner=True: (RecordingModel(events), None))
    return events


def test_one_network_per_model_config_warmed_up_before_use(log):
    pool = RuntimePool()
    first = pool.acquire(EvsConfig())
    assert log == ['built', 'predict 512x256']  # warmed up before anybody got it
    other_op = config_from_flat({'operating_point.preset': 'EVS10'})
    assert pool.acquire(other_op) is first and len(pool) == 1 and log.count('built') == 1
    second = pool.acquire(config_from_flat({'model.device': 'cpu'}))
    assert second is not first and len(pool) == 2
    pool.release(first)
    assert len(pool) == 2 and not first.inference.closed
    pool.release(first)
    pool.release(second)
    assert len(pool) == 0 and first.inference.closed and second.inference.closed


def test_warm_up_runs_the_refiner_too():
    calls = []

    class Refiner:
        def refine(self, image_bgr, probs, features):
            calls.append(probs.shape)
            return probs

    model = RecordingModel([])
    assert warm_up(model, Refiner()) >= 0.0
    assert calls == [(3, 2, 4)]
