"""Integration: the installed evs_node, as its own process, over real DDS (FastDDS, localhost)."""

import os
import time

import numpy as np
import pytest

from conftest import REPO
from evs_ros.testing.player import OUTPUT_TOPICS, FramePlayer, image_msg, start_node, stop_node
from node_harness import uniform_frame

PARAMS_FILE = os.path.join(REPO, 'config', 'evs.yaml')
FAKE_BACKEND = 'python:fake_models:make_model'
STAMP0_NS = 1_700_000_000_000_000_000


@pytest.fixture
def node_with_client(ros_env, tmp_path):
    started = []

    def start(overrides=None, prefix='', reliable=True, namespace=''):
        params = {'model.backend': FAKE_BACKEND, 'model.refiner': "''",
                  'publish.qos_reliability': 'reliable' if reliable else 'best_effort',
                  'publish.input_qos_reliability': 'reliable' if reliable else 'best_effort'}
        params.update(overrides or {})
        process = start_node(ros_env, PARAMS_FILE, params, namespace=namespace,
                             log_path=str(tmp_path / 'node.log'))
        client = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), prefix=prefix, reliable=reliable)
        started.append((process, client))
        try:
            client.wait_for_node(process)
        except RuntimeError:
            print(open(tmp_path / 'node.log').read())
            raise
        return process, client

    yield start
    for process, client in started:
        client.close()
        assert stop_node(process) in (0, -2), open(tmp_path / 'node.log').read()


def test_status_message_round_trips_over_dds(ros_env):
    from evs_ros.msg import FrameStatus
    client = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), prefix='roundtrip/', reliable=True,
                         topics=('status',))
    try:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publisher = client.node.create_publisher(FrameStatus, 'roundtrip/status', qos)
        assert client.wait_for(lambda: publisher.get_subscription_count() > 0, 20)
        sent = FrameStatus(camera='front', operating_point='EVS07', keyframe_requested=True,
                           frames_since_keyframe=3, refined=True, inconsistent_fraction=0.25,
                           flow_ms=4.5, latency_ms=12.0, frames_received=7, frames_dropped=2)
        sent.header.frame_id = 'cam'
        sent.header.stamp.sec = 42
        publisher.publish(sent)
        assert client.wait_for(lambda: client.count('status') >= 1, 20)
        got = client.messages('status')[0]
        assert got == sent
    finally:
        client.close()


def test_node_outputs_carry_input_headers_and_labels(node_with_client):
    process, client = node_with_client()
    sent = []
    for i in range(9):
        stamp_ns = STAMP0_NS + i * 100_000_000
        msg = image_msg(uniform_frame(14 * i + 3), 'bgr8', stamp_ns, frame_id=f'cam_{i % 2}')
        sent.append(msg.header)
        client.publish_msg(msg)
        time.sleep(0.15)
    assert client.wait_for(lambda: all(client.count(t) >= len(sent) for t in OUTPUT_TOPICS)), \
        {t: client.count(t) for t in OUTPUT_TOPICS}
    for topic in OUTPUT_TOPICS:
        headers = [(m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id)
                   for m in client.messages(topic)]
        assert headers == [(h.stamp.sec, h.stamp.nanosec, h.frame_id) for h in sent], topic
    encodings = {t: {m.encoding for m in client.messages(t)} for t in OUTPUT_TOPICS[:4]}
    assert encodings == {'labels': {'mono8'}, 'labels_color': {'rgb8'}, 'overlay': {'rgb8'},
                         'inconsistency_mask': {'mono8'}}
    first = client.messages('labels')[0]
    assert (first.height, first.width) == (64, 96)
    label_values = [set(np.frombuffer(bytes(m.data), np.uint8)) for m in client.messages('labels')]
    assert label_values[0] == {0}, 'frame 0 is a keyframe: its own class (blue 3 // 14 = 0)'
    for i, values in enumerate(label_values):  # every output comes from a keyframe at or before it
        assert len(values) == 1 and values.pop() <= i
    statuses = client.messages('status')
    first = statuses[0]
    assert first.keyframe_requested and first.labels_from_network
    assert first.frames_since_keyframe == 0
    assert first.operating_point == 'EVS05'
    assert sum(s.keyframe_requested for s in statuses) >= 3  # EVS05: S=3 over 9 frames


def test_node_works_with_best_effort_sensor_qos_in_a_namespace(node_with_client):
    process, client = node_with_client(prefix='front/', reliable=False, namespace='front')
    for i in range(20):
        client.publish(uniform_frame(30), STAMP0_NS + i * 50_000_000, encoding='rgb8')
        time.sleep(0.05)
    assert client.wait_for(lambda: client.count('labels') >= 10, 30), client.count('labels')
