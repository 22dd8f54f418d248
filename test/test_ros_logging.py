"""Pipeline log lines through the node's logger.

They carry the node's name, reach /rosout and obey --log-level; a stream's repeats are
throttled, tracebacks go to DEBUG. Unit tests of the forwarder (fake ROS loggers) and the
installed node over real DDS (reading /rosout).
"""

import logging
import threading

from evs_ros.ros.logs import REPEAT_LOG_PERIOD_S, PipelineLogForwarder
from node_harness import stamp, uniform_frame


class FakeRosLogger:
    """Records what a forwarder logs; ``enabled``: the lowest severity it lets through."""

    def __init__(self, name, calls, enabled=10):
        self.name, self.calls, self.enabled = name, calls, enabled

    def is_enabled_for(self, severity):
        return int(severity) >= self.enabled

    def log(self, message, severity, **kwargs):
        self.calls.append((self.name, id(self), int(severity), message, kwargs))
        return True

    def debug(self, message):
        self.calls.append((self.name, id(self), 10, message, {}))


def forwarding(enabled=10):
    """Return a forwarder on a private Python logger: (logger, forwarder, calls)."""
    calls = []
    forwarder = PipelineLogForwarder(lambda name: FakeRosLogger(name, calls, enabled))
    logger = logging.getLogger(f'evs_ros_test_{id(calls)}')
    logger.addHandler(forwarder)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, forwarder, calls


def test_stream_records_go_to_their_node_throttled_per_cause():
    logger, forwarder, calls = forwarding()
    forwarder.attach('/front/evs_node', 'front.evs_node')
    forwarder.attach('/rear/evs_node', 'rear.evs_node')
    for _ in range(2):
        logger.warning('%s: frame rejected: stamp %d', '/front/evs_node: left', 5)
    logger.warning('%s: frame rejected: stamp %d', '/front/evs_node: right', 6)
    logger.info('%s: resolution changed', '/rear/evs_node: camera')
    names = [(name, message) for name, _, _, message, _ in calls]
    assert names == [('front.evs_node', 'left: frame rejected: stamp 5'),
                     ('front.evs_node', 'left: frame rejected: stamp 5'),
                     ('front.evs_node', 'right: frame rejected: stamp 6'),
                     ('rear.evs_node', 'camera: resolution changed')]
    assert all(kwargs == {'throttle_duration_sec': REPEAT_LOG_PERIOD_S}
               for *_, kwargs in calls), "a stream's records are throttled"
    objects = [object_id for _, object_id, *_ in calls]
    assert objects[0] == objects[1] and len(set(objects)) == 3, 'one throttle per cause'


def test_records_without_a_stream_go_to_the_loading_node_else_to_every_node():
    logger, forwarder, calls = forwarding()
    forwarder.attach('/a', 'a')
    forwarder.attach('/b', 'b')
    with forwarder.loading_node('/b'):
        logger.info('network %s ready', 'icnet')
    assert [(c[0], c[3], c[4]) for c in calls] == [('b', 'network icnet ready', {})]
    calls.clear()
    thread = threading.Thread(target=logger.warning, args=('inference worker still busy',))
    thread.start()
    thread.join()
    assert sorted(c[0] for c in calls) == ['a', 'b']
    forwarder.detach('/a')
    forwarder.detach('/b')
    calls.clear()
    logger.warning('%s: frame rejected', '/a: camera')
    assert [c[0] for c in calls] == ['evs_ros'], 'no node attached: the plain evs_ros logger'


def test_exceptions_give_one_line_and_the_traceback_at_debug_only():
    for enabled, expected in ((20, [40]), (10, [40, 10])):
        logger, forwarder, calls = forwarding(enabled)
        forwarder.attach('/evs_node', 'evs_node')
        try:
            raise RuntimeError('boom')
        except RuntimeError:
            logger.exception('%s: frame processing failed', '/evs_node: camera')
        assert [c[2] for c in calls] == expected
        assert calls[0][3] == 'camera: frame processing failed'
        assert 'Traceback' not in calls[0][3]
        if enabled == 10:
            assert 'RuntimeError: boom' in calls[1][3]


def test_the_level_of_the_node_logger_filters():
    logger, forwarder, calls = forwarding(enabled=30)
    forwarder.attach('/evs_node', 'evs_node')
    logger.info('%s: resolution changed', '/evs_node: camera')
    logger.debug('%s: detail', '/evs_node: camera')
    logger.warning('%s: frame rejected', '/evs_node: camera')
    assert [c[3] for c in calls] == ['camera: frame rejected']


class RosoutRecorder:
    """Records /rosout (rcl_interfaces/Log) on a player's node, transient local like rcl's."""

    def __init__(self, player):
        from rcl_interfaces.msg import Log
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        self.logs, self.lock = [], threading.Lock()
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        player.node.create_subscription(Log, '/rosout', self._record, qos)

    def _record(self, msg):
        with self.lock:
            self.logs.append(msg)

    def lines(self, node_name: str = 'evs_node'):
        """[(level, text)] logged by ``node_name``."""
        with self.lock:
            return [(int(m.level), m.msg) for m in self.logs if m.name == node_name]


def test_pipeline_lines_reach_rosout_at_the_node_log_level(harness):
    node = harness(ros_args=('--log-level', 'warn'))
    rosout = RosoutRecorder(node.player)
    player = node.player
    assert node.send_and_wait(uniform_frame(20), stamp(1))
    for _ in range(3):
        player.publish(uniform_frame(20), stamp(1))  # the pipeline rejects stale stamps
    assert node.send_and_wait(uniform_frame(20, 32, 48), stamp(2))  # resolution change: INFO
    player.publish(uniform_frame(20, 8, 8), stamp(3))  # refused by the node: WARN

    def logged():
        texts = [text for _, text in rosout.lines()]
        return (any('is not after the last accepted stamp' in t for t in texts)
                and any('input refused (too_small' in t for t in texts))
    assert player.wait_for(logged, 10), (rosout.lines(), node.log())
    lines = rosout.lines()
    stale = [(level, text) for level, text in lines if 'is not after the last' in text]
    assert len(stale) == 1 and stale[0][0] == 30, 'one WARN line for the three rejections'
    assert stale[0][1].startswith('camera: frame rejected: stamp'), stale
    assert not [text for _, text in lines if 'resolution changed' in text or 'ready' in text], \
        '--log-level warn: no INFO line'
    assert '[evs_node]: camera: frame rejected' in node.log(), 'the terminal shows the node name'


def test_debug_level_adds_the_node_debug_lines(harness):
    node = harness(ros_args=('--log-level', 'debug'))
    rosout = RosoutRecorder(node.player)
    assert node.send_and_wait(uniform_frame(20), stamp(1))
    assert node.send_and_wait(uniform_frame(20, 32, 48), stamp(2))

    def logged():
        texts = [text for _, text in rosout.lines()]
        return (any('first frame: 96x64' in t for t in texts)
                and any('resolution changed to (32, 48)' in t for t in texts))
    assert node.player.wait_for(logged, 10), (rosout.lines(), node.log())
    lines = rosout.lines()
    assert [level for level, text in lines if 'first frame: 96x64' in text] == [10]
    assert [level for level, text in lines if 'resolution changed to (32, 48)' in text] == [20]
