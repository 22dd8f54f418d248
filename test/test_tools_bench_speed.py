"""`evs bench cameras` and `evs bench flow-scale` end to end at tiny sizes.

The reports' shape and their logic, never their timings: benchmarks are commands.
"""

import json

import pytest

from evs_ros.evaluation.cameras import CameraClip, CameraTrial, camera_capacity
from evs_ros.tools import cli

FAKE = ['--backend', 'python:fake_models:make_model', '--refiner', '']


@pytest.mark.slow
def test_cameras_command_reports_capacity_and_every_camera(tmp_path):
    """Counts, never speed: how many cameras this machine serves is the benchmark's answer."""
    out = tmp_path / 'cams'
    assert cli.main(['bench', 'cameras', '--resolution', '128x64', '--clips', '2',
                     '--seconds', '1.5', '--max-cameras', '2', '--out', str(out)] + FAKE) == 0
    report = json.loads((out / 'cameras.json').read_text())
    served = [trial['served'] for trial in report['trials']]
    assert [trial['cameras'] for trial in report['trials']] == list(range(1, len(served) + 1))
    assert all(served[:-1]), 'the trials stop at the first camera count not served'
    assert report['cameras_at_17hz'] == report['cameras_served'] == (served + [False]).index(False)
    for trial in report['trials']:
        assert trial['served'] == all(camera['served'] for camera in trial['per_camera'])
        for camera in trial['per_camera']:
            assert camera['frames_sent'] == 25  # 1.5 s at 17 Hz, however slow the machine
            assert camera['frames_labelled'] + camera['dropped'] + camera['rejected'] == \
                camera['frames_sent'], 'every frame is labelled or counted as dropped'
            assert camera['served'] == (camera['missing_after_warm_up'] == 0
                                        and not camera['backlog_growing'])
            assert camera['miou'] is not None
    summary = f"**Cameras served: {report['cameras_served']}**"
    assert summary in (out / 'cameras.md').read_text()


def test_served_means_labelled_after_the_warm_up_and_no_growing_backlog():
    import numpy as np
    from evs_ros.config import EvsConfig
    from evs_ros.evaluation.cameras import CameraRecord
    trial = CameraTrial(None, None, EvsConfig(), 4, rate_hz=10.0, seconds=4.0)

    def record(name, latency_s, missing=()):
        clip = CameraClip(name, [np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 4), np.uint8)])
        sent = [step / 10.0 for step in range(40)]
        received = {step: sent[step] + latency_s(step) for step in range(40)
                    if step not in missing}
        return CameraRecord(clip, sent, received)

    records = [record('steady', lambda step: 0.05),
               record('missed_in_warm_up', lambda step: 0.05, missing={3}),  # warm-up: 10 frames
               record('missed_later', lambda step: 0.05, missing={20}),
               record('backlog', lambda step: 0.05 + 0.01 * step)]  # 10 ms more per frame
    stats = {r.clip.name: {'dropped': 0, 'rejected': 0} for r in records}
    result = trial._summary(records, stats)
    verdicts = {camera['name']: camera['served'] for camera in result['per_camera']}
    assert verdicts == {'steady': True, 'missed_in_warm_up': True, 'missed_later': False,
                        'backlog': False}
    assert not result['served']
    assert [c['missing_after_warm_up'] for c in result['per_camera']] == [0, 0, 1, 0]


class StallingModel:
    """Takes longer per keyframe than a camera period.

    A second camera cannot be served when every frame must wait (``wait_for_keyframes``).
    """

    num_classes = 4

    def predict(self, image_bgr):
        import time

        import numpy as np

        from evs_ros.models.base import Prediction
        time.sleep(0.15)
        return Prediction(np.full((4, 8, 16), 0.25, np.float32))


def test_capacity_stops_at_the_first_trial_that_is_not_served():
    from evs_ros.config import EvsConfig, RuntimeConfig, operating_point
    import numpy as np
    config = EvsConfig(operating_point=operating_point('PERFRAME'),
                       runtime=RuntimeConfig(wait_for_keyframes=True))
    clip = CameraClip('c', [np.full((32, 64, 3), i, np.uint8) for i in range(5)],
                      [np.zeros((32, 64), np.uint8)] * 5)
    assert [clip.index(step) for step in range(10)] == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1]
    trial = CameraTrial(StallingModel(), None, config, 4, rate_hz=17.0, seconds=1.5)
    result = camera_capacity(trial, [clip], max_cameras=3)
    assert result['cameras_served'] == 0 and len(result['trials']) == 1
    (camera,) = result['trials'][0]['per_camera']
    assert camera['dropped'] > 0 and not camera['served']


def test_flow_scale_command_compares_scales_per_resolution(tmp_path):
    out = tmp_path / 'fs'
    assert cli.main(['bench', 'flow-scale', '--resolutions', '128x64', '--scales', '1,0.5',
                     '--synth-snippets', '1', '--max-propagations', '2',
                     '--out', str(out)] + FAKE) == 0
    report = json.loads((out / 'flow_scale.json').read_text())
    (resolution,) = report['resolutions']
    methods = resolution['figure6']['methods']
    assert list(methods) == ['scale 1', 'scale 0.5']
    assert all(len(m['miou']) == 3 and m['flow_ms_p50'] > 0 for m in methods.values())
    assert (out / 'flow_scale_128x64.png').exists()
