"""Process life of the evs executables: init, spin until SIGINT/SIGTERM, clean shutdown.

ROS 2 launch and terminals both deliver SIGINT (a terminal to the whole process group, launch to
the process): a node often gets it twice, then SIGTERM if it is slow. rclpy's own handlers shut
the context down at the first signal, while worker threads may still publish, and a second
SIGINT raises KeyboardInterrupt in the middle of cleanup. So the executables install their own
handlers instead (``SignalHandlerOptions.NO``): every SIGINT/SIGTERM only sets a flag; the spin
loop then returns, the caller stops its workers while the context is still valid (nothing is
published after that), destroys its nodes and shuts rclpy down. Exit code 0, no traceback.
"""

import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from evs_ros.errors import USER_ERRORS, one_line
from evs_ros.ros import compat
from evs_ros.ros import stop as stop_flag

SPIN_PERIOD_S = 0.1
"""Start-up errors that are the user's to fix: one line on stderr, exit code 2."""


@contextmanager
def ros_process(args: Optional[list] = None) -> Iterator[threading.Event]:
    """``rclpy.init`` with our signal handling.

    Yields the stop event (already set when a signal came during start-up: see
    :mod:`evs_ros.ros.stop`); always shuts down.
    """
    from rclpy.signals import SignalHandlerOptions
    stop_flag.install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        yield stop_flag.STOP
    finally:
        rclpy.try_shutdown()
        stop_flag.ignore()  # a late Ctrl-C during interpreter teardown: exit 0 all the same


def make_executor(multi_threaded: bool = False, threads: Optional[int] = None):
    """Return a single-threaded executor, or a multi-threaded one (``threads`` default: cores)."""
    if multi_threaded:
        return MultiThreadedExecutor(num_threads=threads)
    return SingleThreadedExecutor()


def spin_until(stop: threading.Event, executor) -> None:
    """Spin ``executor`` until ``stop`` is set (a signal) or the context ends."""
    logger = rclpy.logging.get_logger('evs_ros')
    while not stop.is_set() and rclpy.ok():
        compat.spin_once(executor, logger, SPIN_PERIOD_S)


def run_node(program: str, build: Callable[[], object], args: Optional[list] = None,
             multi_threaded: bool = False) -> int:
    """Build a node with ``build()``, spin it until a signal, close it; returns the exit code.

    ``build`` errors of :data:`USER_ERRORS` print ``PROGRAM: error: ...`` (one line) and give
    exit code 2. The node may define ``close()`` (called before ``destroy_node``).
    """
    with ros_process(args) as stop:
        if stop.is_set():  # Ctrl-C during start-up: nothing to build
            return 0
        try:
            node = build()
        except USER_ERRORS as error:
            print(f'{program}: error: {one_line(error)}', file=sys.stderr)
            return 2
        executor = make_executor(multi_threaded)
        executor.add_node(node)
        try:
            spin_until(stop, executor)
        finally:
            close_node(node)
            executor.shutdown(timeout_sec=1.0)
    return 0


def close_node(node) -> None:
    """``node.close()`` (stop workers: nothing is published after it) then destroy the node."""
    close = getattr(node, 'close', None)
    if close is not None:
        close()
    node.destroy_node()
