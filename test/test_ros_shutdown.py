"""Stopping the installed evs_node as a terminal or ROS 2 launch does.

Signals to its process group, idle or while frames flow. Every way ends with exit code 0, no
traceback or RCL error in its output, and nothing published after the node said it stopped (the
player never receives more outputs than the node's last line counts).
"""

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from evs_ros.testing.player import FramePlayer, start_node, stop_node
from node_harness import PARAMS_FILE, SLOW_BACKEND, stamp, uniform_frame

EXIT_TIMEOUT_S = 30.0
FRAME_PERIOD_S = 0.03  # faster than the slow network (50 ms): the queue is never empty
STOPPED = re.compile(r'\[camera\] stopped after (\d+) outputs')
CRASH_TEXTS = ('Traceback', 'KeyboardInterrupt', 'RCLError', 'context is invalid',
               'terminate called')


class Stream:
    """Publishes frames from a thread until stopped; the player records outputs with times."""

    def __init__(self, player: FramePlayer):
        self.player = player
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        index = 0
        while self.running:
            self.player.publish(uniform_frame(14 * (index % 18)), stamp(index))
            index += 1
            time.sleep(FRAME_PERIOD_S)

    def stop(self):
        self.running = False
        self.thread.join(5.0)


def send(process: subprocess.Popen, names) -> None:
    """Send signals by name to the node's process group, 20 ms apart.

    A terminal's Ctrl-C reaches every process of the group; launch then signals the node again.
    """
    for i, name in enumerate(names):
        if i:
            time.sleep(0.02)
        os.killpg(process.pid, getattr(signal, name))


def wait_exit(process: subprocess.Popen) -> None:
    """Wait for the process to end by itself."""
    try:
        process.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_node(process, 1.0)
        pytest.fail(f'evs_node still running {EXIT_TIMEOUT_S:.0f} s after the signal')


@pytest.mark.parametrize('signals, flowing', [
    (('SIGINT',), False),
    (('SIGINT',), True),
    (('SIGINT', 'SIGINT'), True),
    (('SIGINT', 'SIGINT'), False),
    (('SIGTERM',), True),
], ids=['sigint-idle', 'sigint-flowing', 'two-sigints-flowing', 'two-sigints-idle',
        'sigterm-flowing'])
def test_signals_end_the_node_cleanly(ros_env, tmp_path, signals, flowing):
    log_path = tmp_path / 'node.log'
    process = start_node(ros_env, PARAMS_FILE, {'model.backend': SLOW_BACKEND,
                                                'model.refiner': "''"}, log_path=str(log_path))
    player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), reliable=True,
                         topics=('labels', 'status'))
    stream = None
    try:
        player.wait_for_node(process)
        if flowing:
            stream = Stream(player)
            assert player.wait_for(lambda: player.count('status') >= 3, 30.0), log_path.read_text()
        send(process, signals)
        wait_exit(process)
        if stream is not None:
            stream.stop()
        log = log_path.read_text()
        stopped = STOPPED.findall(log)
        assert len(stopped) == 1, log
        outputs = int(stopped[0])
        if flowing:  # the outputs sent before the exit arrive (reliable): wait for them
            player.wait_for(lambda: player.count('status') >= outputs, 10.0)
        received = player.count('status')
    finally:
        if stream is not None:
            stream.stop()
        player.close()
        stop_node(process)
    assert process.returncode == 0, log
    assert not [text for text in CRASH_TEXTS if text in log], log
    assert received <= outputs, f'{received} outputs arrived, the node published {outputs}'
    assert (received > 0) == flowing
