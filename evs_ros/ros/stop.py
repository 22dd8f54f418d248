"""The process-wide stop flag of the evs executables, set by SIGINT and SIGTERM.

The executables install the handlers before anything else (importing rclpy and torch takes a
moment, and a Ctrl-C then must not end in a traceback); :mod:`evs_ros.ros.process` uses the same
flag. Only the standard library here, so installing it costs nothing.
"""

import signal
import threading

STOP = threading.Event()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install() -> dict:
    """Make SIGINT/SIGTERM set :data:`STOP`; returns the previous handlers."""
    return {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}


def _on_signal(signum, frame) -> None:
    STOP.set()


def ignore() -> None:
    """Ignore SIGINT/SIGTERM from now on (cleanup is done).

    The interpreter would otherwise put the default handlers back while it finalises, and a late
    signal would kill the process.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
