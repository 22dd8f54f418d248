"""``python:`` networks for the evs fleet tests, imported by the Ray workers (PYTHONPATH).

``make_probe_model``: fake_models' colour bands (same labels) that take 100 ms per call and
append a line per call (keyframe) to ``$EVS_TEST_PROBE_DIR/<pid>``, so a test sees which worker
process is labelling and how far it got, and can kill it mid-bag.
``make_cached_model``: the colour bands, but only where ``$XDG_CACHE_HOME/evs_ros/fake/ok`` exists
and ``HF_HUB_OFFLINE=1`` (what a shipped ``--weights-dir`` gives a worker).
"""

import os
import time

from fake_models import ColourBands

PROBE_DIR_ENV = 'EVS_TEST_PROBE_DIR'


class ProbeBands(ColourBands):
    delay_s = 0.1

    def __call__(self, image_bgr):
        probe_dir = os.environ.get(PROBE_DIR_ENV)
        if probe_dir:
            with open(os.path.join(probe_dir, str(os.getpid())), 'a') as stream:
                stream.write('frame\n')
        time.sleep(self.delay_s)
        return super().__call__(image_bgr)


def make_probe_model():
    return ProbeBands()


def make_cached_model():
    marker = os.path.join(os.environ.get('XDG_CACHE_HOME', ''), 'evs_ros', 'fake', 'ok')
    if not os.path.isfile(marker):
        raise FileNotFoundError(f'fake network {marker} is not in the cache')
    if os.environ.get('HF_HUB_OFFLINE') != '1':
        raise RuntimeError('the worker may download: HF_HUB_OFFLINE is not 1')
    return ColourBands()
