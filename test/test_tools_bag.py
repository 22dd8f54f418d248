"""Tests for `evs bag` (evs_ros.bags.labelling + evs_ros.data.rosbag_io): small bags, no rclpy.

Input bags are written here with the plain ``rosbags`` API (not with the code under test) and the
outputs are read back with it, in both storages rosbags writes (sqlite3 and mcap).
"""

import json

import numpy as np
import pytest
import yaml
from rosbags.interfaces import QosReliability
from rosbags.rosbag2 import Reader

from bag_helpers import (FRAMES, HEIGHT, OUTPUTS, STORAGES, STORE, WIDTH, as_array, frame_bgr,
                         image_message, read_bag, stamp_ns, write_input_bag)

from evs_ros.bags.labelling import SUMMARY_FILE, output_topics, process_bag
from evs_ros.data.labels import colorize as cityscapes_colorize
from evs_ros.data.rosbag_io import DEFAULT_QOS, BagError
from evs_ros.tools import cli


class FakeSegmenter:
    """labels = blue // 14 + frame count (depends on the image and the call order), mask = 3*x."""

    def __init__(self):
        self.calls = []

    def __call__(self, image_bgr, stamp_ns):
        self.calls.append((image_bgr.copy(), stamp_ns))
        labels = (image_bgr[..., 0] // 14 + len(self.calls)).astype(np.uint8)
        mask = np.broadcast_to(np.arange(WIDTH, dtype=np.uint8) * 3, labels.shape).copy()
        return labels, mask


@pytest.mark.parametrize('storage', sorted(STORAGES))
def test_process_bag_copies_everything_and_adds_outputs(tmp_path, storage):
    topic = write_input_bag(tmp_path / 'in', storage)
    fake = FakeSegmenter()
    summary = process_bag(tmp_path / 'in', tmp_path / 'out', topic, fake, storage=storage)
    assert (summary.frames, summary.skipped_frames, summary.messages_copied) == \
        (FRAMES, 0, 2 * FRAMES)
    assert summary.output_topics == OUTPUTS
    inputs, outputs = read_bag(tmp_path / 'in'), read_bag(tmp_path / 'out')
    assert set(outputs) == set(inputs) | set(OUTPUTS)
    for name in inputs:  # originals unchanged, in order, at the same bag times
        assert [(t, m, STORE.serialize_cdr(x, m)) for t, m, x in outputs[name]] == \
            [(t, m, STORE.serialize_cdr(x, m)) for t, m, x in inputs[name]]
    # the segmenter saw the decoded frames with the header stamps, in order
    assert [s for _, s in fake.calls] == [stamp_ns(m) for _, _, m in inputs[topic]]
    for index, (image, _) in enumerate(fake.calls):
        np.testing.assert_array_equal(image, frame_bgr(index))
    check_outputs(inputs[topic], outputs)


def check_outputs(image_messages, outputs):
    """Every output has the input's bag time and header, its encoding and the fake's content."""
    encodings = dict(zip(OUTPUTS, ('mono8', 'rgb8', 'mono8')))
    for name in OUTPUTS:
        assert len(outputs[name]) == FRAMES
        pairs = zip(image_messages, outputs[name])
        for (time_in, _, msg_in), (time_out, msgtype, msg_out) in pairs:
            assert msgtype == 'sensor_msgs/msg/Image' and time_out == time_in
            assert (stamp_ns(msg_out), msg_out.header.frame_id) == \
                (stamp_ns(msg_in), msg_in.header.frame_id)
            assert (msg_out.encoding, msg_out.height, msg_out.width) == \
                (encodings[name], HEIGHT, WIDTH)
    for index in range(FRAMES):
        expected_labels = np.full((HEIGHT, WIDTH), index + index + 1, np.uint8)
        labels = as_array(outputs['/camera/labels'][index][2])
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_array_equal(as_array(outputs['/camera/labels_color'][index][2]),
                                      cityscapes_colorize(expected_labels))
        mask = as_array(outputs['/camera/inconsistency_mask'][index][2])
        np.testing.assert_array_equal(mask[5], np.arange(WIDTH) * 3)


def test_compressed_topic_and_undecodable_frame_is_skipped(tmp_path, capsys):
    topic = write_input_bag(tmp_path / 'in', compressed=True, broken_frame=4)
    fake = FakeSegmenter()
    summary = process_bag(tmp_path / 'in', tmp_path / 'out', topic, fake,
                          colorize=lambda labels: np.dstack([labels] * 3))
    assert (summary.frames, summary.skipped_frames) == (FRAMES - 1, 1)
    assert summary.output_topics == OUTPUTS  # /camera/image/compressed -> namespace /camera
    outputs = read_bag(tmp_path / 'out')
    assert len(outputs[topic]) == FRAMES and len(outputs['/camera/labels']) == FRAMES - 1
    assert 'cannot decode' in capsys.readouterr().err
    stamps_in = [stamp_ns(header_only) for header_only in
                 (image_message(i, True) for i in range(FRAMES) if i != 4)]
    assert [stamp_ns(m) for _, _, m in outputs['/camera/labels_color']] == stamps_in
    colour = as_array(outputs['/camera/labels_color'][0][2])
    np.testing.assert_array_equal(colour[..., 1], as_array(outputs['/camera/labels'][0][2]))


def test_raw_image_with_short_data_is_skipped(tmp_path):
    topic = write_input_bag(tmp_path / 'in', broken_frame=0)
    summary = process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    assert (summary.frames, summary.skipped_frames) == (FRAMES - 1, 1)


def test_default_storage_is_the_inputs(tmp_path):
    topic = write_input_bag(tmp_path / 'in', 'mcap')
    process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    assert list((tmp_path / 'out').glob('*.mcap'))
    metadata = (tmp_path / 'out' / 'metadata.yaml').read_text()
    assert 'version: 8' in metadata and 'storage_identifier: mcap' in metadata


def offered_qos(path):
    with Reader(path) as reader:
        return {conn.topic: conn.ext.offered_qos_profiles for conn in reader.connections}


def test_outputs_are_offered_with_the_cameras_qos(tmp_path):
    camera_qos = DEFAULT_QOS._replace(reliability=QosReliability.BEST_EFFORT, depth=5)
    topic = write_input_bag(tmp_path / 'in', qos=[camera_qos])
    process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    profiles = offered_qos(tmp_path / 'out')
    assert profiles[topic] == [camera_qos]
    assert all(profiles[name] == [camera_qos] for name in OUTPUTS)
    # format 8 writes QoS as a YAML string with integer enums (the layout Humble parses)
    metadata = yaml.safe_load((tmp_path / 'out' / 'metadata.yaml').read_text())
    info = metadata['rosbag2_bagfile_information']
    assert info['version'] == 8
    for entry in info['topics_with_message_count']:
        qos_text = entry['topic_metadata']['offered_qos_profiles']
        assert isinstance(qos_text, str)
        if entry['topic_metadata']['name'] in OUTPUTS:
            assert yaml.safe_load(qos_text)[0]['reliability'] == 2  # best effort


def test_outputs_get_a_default_qos_when_the_camera_offers_none(tmp_path):
    topic = write_input_bag(tmp_path / 'in')
    process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    profiles = offered_qos(tmp_path / 'out')
    assert profiles[topic] == [] and profiles['/chatter'] == []
    assert all(profiles[name] == [DEFAULT_QOS] for name in OUTPUTS)


@pytest.mark.parametrize('topic, message', [
    ('/missing/image', 'is not in the bag; image topics in the bag: /camera/image'),
    ('/chatter', 'has type std_msgs/msg/String'),
])
def test_wrong_image_topic_is_reported_and_writes_nothing(tmp_path, topic, message):
    write_input_bag(tmp_path / 'in')
    with pytest.raises(BagError, match=message):
        process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    assert not (tmp_path / 'out').exists()


def test_missing_or_broken_input_is_reported(tmp_path):
    for storage in (None, 'sqlite3'):  # storage from the metadata, or given
        with pytest.raises(BagError, match='nothing is not a .*ROS 2 bag'):
            process_bag(tmp_path / 'nothing', tmp_path / 'out', '/camera/image',
                        FakeSegmenter(), storage=storage)
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    for storage in (None, 'sqlite3'):
        with pytest.raises(BagError, match='broken'):
            process_bag(tmp_path / 'broken', tmp_path / 'out', '/camera/image',
                        FakeSegmenter(), storage=storage)
    assert not (tmp_path / 'out').exists()


def test_existing_output_and_processed_input_are_refused(tmp_path):
    topic = write_input_bag(tmp_path / 'in')
    process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    with pytest.raises(BagError, match='already exists'):
        process_bag(tmp_path / 'in', tmp_path / 'out', topic, FakeSegmenter())
    with pytest.raises(BagError, match='already has output topic'):
        process_bag(tmp_path / 'out', tmp_path / 'again', topic, FakeSegmenter())


def test_failure_while_processing_removes_the_partial_output(tmp_path):
    topic = write_input_bag(tmp_path / 'in')

    def failing(image_bgr, stamp_ns):
        raise RuntimeError('network exploded')

    with pytest.raises(RuntimeError, match='exploded'):
        process_bag(tmp_path / 'in', tmp_path / 'out', topic, failing)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('image_topic, compressed, labels_topic', [
    ('/camera/image', False, '/camera/labels'),
    ('/camera/image_raw', False, '/camera/labels'),
    ('/front/camera/image/compressed', True, '/front/camera/labels'),
    ('/image', False, '/labels'),
    ('image', False, '/labels'),
])
def test_output_topics_live_next_to_the_image(image_topic, compressed, labels_topic):
    assert output_topics(image_topic, compressed)['labels'] == labels_topic


def test_cli_runs_the_real_pipeline_with_a_python_backend(tmp_path, capsys):
    """`evs bag` end to end: EvsPipeline per frame (PERFRAME) over the fake_models network."""
    topic = write_input_bag(tmp_path / 'in')
    code = cli.main(['bag', str(tmp_path / 'in'), str(tmp_path / 'out'), '--image-topic', topic,
                     '--backend', 'python:fake_models:make_model', '--refiner', '',
                     '--device', 'cpu', '--operating-point', 'PERFRAME', '--storage', 'mcap'])
    assert code == 0, capsys.readouterr().err
    assert f'{FRAMES} frames' in capsys.readouterr().out
    outputs = read_bag(tmp_path / 'out')
    for index, (_, _, msg) in enumerate(outputs['/camera/labels']):
        # fake_models: class = blue // 14 = index on every pixel
        np.testing.assert_array_equal(as_array(msg), np.full((HEIGHT, WIDTH), index, np.uint8))
    summary = json.loads((tmp_path / 'out' / SUMMARY_FILE).read_text())
    assert (summary['frames'], summary['keyframes'], summary['chunks']) == \
        (FRAMES, FRAMES, [[0, FRAMES]])
    assert summary['settings']['operating_point']['name'] == 'PERFRAME'
    assert summary['settings']['model']['backend'] == 'python:fake_models:make_model'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temporary left


def test_cli_refuses_an_existing_output_and_leaves_it(tmp_path, capsys):
    write_input_bag(tmp_path / 'in')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'keep.txt').write_text('mine')
    code = cli.main(['bag', str(tmp_path / 'in'), str(tmp_path / 'out'),
                     '--backend', 'python:fake_models:make_model', '--refiner', ''])
    assert code == 2 and 'already exists' in capsys.readouterr().err
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['keep.txt']


def test_cli_reports_errors_with_exit_code(tmp_path, capsys):
    write_input_bag(tmp_path / 'in')
    code = cli.main(['bag', str(tmp_path / 'in'), str(tmp_path / 'out'), '--image-topic', '/x',
                     '--backend', 'python:fake_models:make_model', '--refiner', ''])
    assert code == 2 and "image topic '/x' is not in the bag" in capsys.readouterr().err
