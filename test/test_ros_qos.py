"""QoS of the installed evs_node over real DDS, with its default settings (REP-2003).

Outputs are reliable, so a default-QoS (reliable) subscriber and a sensor-data (best-effort)
subscriber both get every frame; the image subscription is best effort; the standard
``qos_overrides`` parameters change a single topic.
"""

import os

from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from evs_ros.msg import FrameStatus
from evs_ros.testing.player import FramePlayer, start_node, stop_node
from node_harness import FAKE_BACKEND, PARAMS_FILE, stamp, uniform_frame

TOPICS = ('labels', 'status')
PRIME_FRAMES = 15  # at most, sent 2 s apart until every subscriber got an output
DEFAULT_QOS_DEPTH = 10  # what `create_subscription(..., 10)` means: reliable, keep last 10


class Recorder:
    """Stamps (ns) received on ``labels`` and ``status`` by subscriptions of one QoS."""

    def __init__(self, player: FramePlayer, qos):
        self.stamps = {topic: [] for topic in TOPICS}
        for topic in TOPICS:
            player.node.create_subscription(
                FrameStatus if topic == 'status' else Image, topic,
                lambda msg, t=topic: self.stamps[t].append(_stamp_ns(msg)), qos)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def start(ros_env, tmp_path, overrides=None):
    """Start the node with only the fake backend set and a player that publishes images.

    Every QoS setting at its default; returns (process, player).
    """
    params = {'model.backend': FAKE_BACKEND, 'model.refiner': "''"}
    params.update(overrides or {})
    log_path = str(tmp_path / 'node.log')
    process = start_node(ros_env, PARAMS_FILE, params, log_path=log_path)
    player = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), reliable=True, topics=())
    try:
        player.wait_for_node(process)
    except RuntimeError:
        player.close()
        stop_node(process)
        raise RuntimeError(open(log_path).read())
    return process, player


def stop(process, player, tmp_path):
    player.close()
    assert stop_node(process) == 0, open(os.path.join(tmp_path, 'node.log')).read()


def prime(player, wanted) -> int:
    """Send frames until each recorder of ``wanted`` got every one of its topics once.

    Discovery is then done; returns the index of the next frame to send.
    """
    def done():
        return all(recorder.stamps[t] for recorder, topics in wanted for t in topics)

    index = 0
    while not done():
        assert index < PRIME_FRAMES, [{t: len(r.stamps[t]) for t in ts} for r, ts in wanted]
        player.publish(uniform_frame(40), stamp(index))
        player.wait_for(done, 2.0)
        index += 1
    return index


def play(player, recorder, first: int, count: int):
    """Send frames one at a time, each after ``recorder`` got the previous one's status."""
    sent = []
    for index in range(first, first + count):
        before = len(recorder.stamps['status'])
        player.publish(uniform_frame(14 * (index % 18)), stamp(index))
        sent.append(stamp(index))
        assert player.wait_for(lambda: len(recorder.stamps['status']) > before, 20.0), index
    return sent


def offered_reliability(player, topic: str):
    """Reliability the node's publisher of ``topic`` offers (from the ROS graph)."""
    infos = [i for i in player.node.get_publishers_info_by_topic(topic)
             if i.node_name == 'evs_node']
    assert len(infos) == 1, infos
    return infos[0].qos_profile.reliability


def test_default_and_sensor_data_subscribers_both_get_every_frame(ros_env, tmp_path):
    process, player = start(ros_env, tmp_path)
    try:
        reliable = Recorder(player, DEFAULT_QOS_DEPTH)
        sensor = Recorder(player, qos_profile_sensor_data)
        first = prime(player, [(reliable, TOPICS), (sensor, TOPICS)])
        sent = play(player, reliable, first, 8)
        for recorder in (reliable, sensor):
            player.wait_for(lambda: all(sent[-1] in recorder.stamps[t] for t in TOPICS), 10.0)
            for topic in TOPICS:
                got = [s for s in recorder.stamps[topic] if s >= sent[0]]
                assert got == sent, (topic, recorder is reliable, got, sent)
        for topic in TOPICS:
            assert offered_reliability(player, '/' + topic) == ReliabilityPolicy.RELIABLE
        subscription = [i for i in player.node.get_subscriptions_info_by_topic('/image')
                        if i.node_name == 'evs_node']
        assert subscription[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    finally:
        stop(process, player, tmp_path)
    assert 'incompatible' not in open(tmp_path / 'node.log').read().lower()


def test_qos_override_parameter_changes_one_topic(ros_env, tmp_path):
    overrides = {'qos_overrides./labels.publisher.reliability': 'best_effort'}
    process, player = start(ros_env, tmp_path, overrides)
    try:
        assert offered_reliability(player, '/labels') == ReliabilityPolicy.BEST_EFFORT
        assert offered_reliability(player, '/status') == ReliabilityPolicy.RELIABLE
        reliable = Recorder(player, DEFAULT_QOS_DEPTH)
        sensor = Recorder(player, qos_profile_sensor_data)
        first = prime(player, [(reliable, ('status',)), (sensor, TOPICS)])
        sent = play(player, reliable, first, 4)
        assert player.wait_for(lambda: sent[-1] in sensor.stamps['labels'], 10)
        assert reliable.stamps['labels'] == []  # best effort offered, reliable requested
        assert [s for s in reliable.stamps['status'] if s >= sent[0]] == sent
    finally:
        stop(process, player, tmp_path)
