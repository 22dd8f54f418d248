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


def test_compressed_input_follows_the_image_remap_and_camera_info_is_passed_through(
        ros_env, tmp_path):
    import cv2
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage
    params = {'model.backend': FAKE_BACKEND, 'model.refiner': "''",
              'publish.qos_reliability': 'reliable', 'publish.input_qos_reliability': 'reliable',
              'publish.subscribe_compressed': 'true', 'operating_point.preset': 'PERFRAME'}
    process = start_node(ros_env, PARAMS_FILE, params, log_path=str(tmp_path / 'node.log'),
                         ros_args=('-r', 'image:=/cam/image_raw'))
    client = FramePlayer(int(ros_env['ROS_DOMAIN_ID']), reliable=True,
                         topics=('labels', 'status'))
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        jpeg = client.node.create_publisher(CompressedImage, '/cam/image_raw/compressed', qos)
        info_in = client.node.create_publisher(CameraInfo, '/cam/camera_info', qos)
        infos = []
        client.node.create_subscription(CameraInfo, '/camera_info', infos.append, qos)
        node = client.node
        assert client.wait_for(lambda: jpeg.get_subscription_count() > 0
                               and info_in.get_subscription_count() > 0
                               and node.count_publishers('/camera_info') > 0
                               and node.count_publishers('/labels') > 0, 30), \
            open(tmp_path / 'node.log').read()
        assert node.count_subscribers('/cam/image_raw') == 0, 'compressed instead of raw'
        assert client.wait_for(lambda: node.count_subscribers('/labels') > 0, 10)
        info = CameraInfo(width=96, height=64, distortion_model='plumb_bob')
        info.k = [50.0, 0.0, 48.0, 0.0, 50.0, 32.0, 0.0, 0.0, 1.0]
        info.header.frame_id = 'cam'
        info_in.publish(info)
        for index in range(3):
            msg = CompressedImage(format='jpeg')
            msg.header.stamp.sec, msg.header.frame_id = 100 + index, 'cam'
            msg.data = cv2.imencode('.jpg', uniform_frame(30))[1].tobytes()
            before = client.count('status')
            jpeg.publish(msg)
            assert client.wait_for(lambda: client.count('status') > before, 20), \
                open(tmp_path / 'node.log').read()
        labels = client.messages('labels')
        assert [m.header.stamp.sec for m in labels] == [100, 101, 102]
        assert all(set(np.frombuffer(bytes(m.data), np.uint8)) == {30 // 14} for m in labels)
        assert client.wait_for(lambda: len(infos) >= 2, 10), 'camera_info beside the labels'
        assert {(i.header.stamp.sec, i.header.frame_id) for i in infos} <= \
            {(m.header.stamp.sec, m.header.frame_id) for m in labels}, "the labels' headers"
        assert list(infos[-1].k) == list(info.k) and infos[-1].width == 96
    finally:
        client.close()
        assert stop_node(process) == 0, open(tmp_path / 'node.log').read()


def test_no_camera_info_pass_through_when_the_camera_sits_beside_the_labels(node_with_client):
    process, client = node_with_client()
    assert client.node.count_publishers('/camera_info') == 0
    assert client.node.count_subscribers('/camera_info') == 0
