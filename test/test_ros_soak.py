"""Soak: a few thousand small frames through the installed evs_node as fast as it takes them.

Every frame gets its outputs and the node's memory (VmRSS) does not keep growing.
"""

import pytest

from node_harness import NodeHarness, stamp, uniform_frame

pytestmark = pytest.mark.slow

FRAMES = 2000
WARM_UP = 200
IN_FLIGHT = 2  # frames published but not yet answered: the node is never idle...
QUEUE_SIZE = 2  # ...and its input buffer never has to drop one
RSS_GROWTH_LIMIT_MB = 50.0


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (VmRSS of /proc/PID/status)."""
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'no VmRSS for pid {pid}')


@pytest.fixture
def node(ros_env, tmp_path):
    harness = NodeHarness(ros_env, str(tmp_path / 'node.log'),
                          {'operating_point.preset': 'EVS05',
                           'runtime.input_queue_size': QUEUE_SIZE})
    yield harness
    alive = harness.alive()
    assert harness.close() in (0, -2) and alive, harness.log()


def test_thousands_of_frames_without_memory_growth(node):
    player = node.player
    frames = [uniform_frame(blue, 32, 64) for blue in range(0, 250, 10)]
    rss_start_mb = None
    for index in range(FRAMES):
        if index == WARM_UP:
            rss_start_mb = rss_mb(node.process.pid)
        assert player.wait_for(lambda: player.count('status') >= index + 1 - IN_FLIGHT, 20), \
            f'no output for frame {index - IN_FLIGHT}\n{node.log()[-2000:]}'
        player.publish(frames[index % len(frames)], stamp(index))
    counts = node.wait_counts(FRAMES)
    assert set(counts.values()) == {FRAMES}, counts
    rss_end_mb = rss_mb(node.process.pid)
    growth_mb = rss_end_mb - rss_start_mb
    print(f'\nsoak: {FRAMES} frames 64x32, node VmRSS {rss_start_mb:.1f} MB after '
          f'{WARM_UP} frames -> {rss_end_mb:.1f} MB at the end: growth {growth_mb:+.1f} MB')
    status = player.messages('status')[-1]
    assert (status.frames_received, status.frames_dropped, status.frames_rejected) == \
        (FRAMES, 0, 0)
    assert sum(s.keyframe_requested for s in player.messages('status')) == -(-FRAMES // 3)
    assert growth_mb < RSS_GROWTH_LIMIT_MB
    assert node.alive()
