"""Fake networks (``python:counting_models:FACTORY``) that record every network built.

Each factory call appends one line ``<pid> <factory>`` to the file named by
``$EVS_TEST_NETWORK_LOG`` (when set), so a test can count the networks a process loaded.
"""

import os
import time

from fake_models import ColourBands

NETWORK_LOG_ENV = 'EVS_TEST_NETWORK_LOG'
SLOW_LOAD_S = 3.0


def _record(factory: str) -> None:
    path = os.environ.get(NETWORK_LOG_ENV)
    if path:
        with open(path, 'a', encoding='utf-8') as log:
            log.write(f'{os.getpid()} {factory}\n')


def make_model():
    """:class:`~fake_models.ColourBands` (class = blue // 14), recorded."""
    _record('make_model')
    return ColourBands()


def make_slow_loading_model():
    """Like :func:`make_model`, but loading takes ``SLOW_LOAD_S`` (a big network)."""
    time.sleep(SLOW_LOAD_S)
    _record('make_slow_loading_model')
    return ColourBands()


def networks_built(path) -> list:
    """Return the factories recorded in ``path`` so far, in order."""
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as log:
        return [line.split()[1] for line in log if line.strip()]
