"""Tests for evs_ros.ros.conversions: messages are built directly, without rclpy.init()."""

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

sensor_msgs = pytest.importorskip('sensor_msgs.msg')
from std_msgs.msg import Header  # noqa: E402

from evs_ros.ros import conversions  # noqa: E402
from evs_ros.ros.conversions import (  # noqa: E402
    ImageConversionError, compressed_msg_to_bgr, image_msg_to_bgr, labels_to_msg, mono_to_msg,
    rgb_to_msg, stamp_to_ns)

HEIGHT, WIDTH = 5, 7


@pytest.fixture(params=['builtin', 'cv_bridge'])
def decoder(request, monkeypatch):
    """Run a test with the numpy path and, where cv_bridge is installed, with cv_bridge."""
    if request.param == 'builtin':
        monkeypatch.setattr(conversions, '_cv_bridge', None)
    else:
        cv_bridge = pytest.importorskip('cv_bridge')
        monkeypatch.setattr(conversions, '_cv_bridge', cv_bridge.CvBridge())
    return request.param


def random_bgr(seed=0):
    """Return a uint8 (HEIGHT, WIDTH, 3) BGR image."""
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def encode_pixels(bgr, encoding):
    """Return the unpadded (H, W, C) pixels of ``bgr`` in ``encoding``, independent of the code."""
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    alpha = np.full_like(b, 200)
    gray = bgr[..., 0]
    layouts = {
        'bgr8': (b, g, r), 'rgb8': (r, g, b), 'bgra8': (b, g, r, alpha),
        'rgba8': (r, g, b, alpha), 'mono8': (gray,), '8UC1': (gray,), '8UC3': (b, g, r),
        '8UC4': (b, g, r, alpha),
    }
    return np.stack(layouts[encoding], axis=-1)


def expected_bgr(bgr, encoding):
    """BGR that decoding should give: colour images round-trip, mono is replicated."""
    if encoding in ('mono8', '8UC1'):
        return np.repeat(bgr[..., :1], 3, axis=2)
    return bgr


def make_image(pixels, encoding, padding=0):
    """Build an Image from (H, W, C) pixels with ``padding`` junk bytes after each row."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    junk = np.full((height, padding), 77, dtype=np.uint8)
    raw = np.concatenate([rows, junk], axis=1).tobytes()
    msg = sensor_msgs.Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step = width * channels + padding
    msg.data = raw
    return msg


@pytest.mark.parametrize('encoding', conversions.SUPPORTED_ENCODINGS)
@pytest.mark.parametrize('padding', [0, 3])
def test_every_encoding_decodes_to_bgr(decoder, encoding, padding):
    bgr = random_bgr()
    msg = make_image(encode_pixels(bgr, encoding), encoding, padding)
    out = image_msg_to_bgr(msg)
    assert out.dtype == np.uint8 and out.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(out, expected_bgr(bgr, encoding))


@pytest.mark.parametrize('container', [bytes, bytearray, memoryview, list, np.array])
def test_duck_typed_messages_with_any_data_container(monkeypatch, container):
    """Accept rosbags messages (numpy data) and hand-built ones (bytes or lists)."""
    monkeypatch.setattr(conversions, '_cv_bridge', None)
    bgr = random_bgr(1)
    msg = make_image(encode_pixels(bgr, 'rgb8'), 'rgb8', padding=2)
    raw = bytes(msg.data)
    data = np.frombuffer(raw, np.uint8).copy() if container is np.array else container(raw)
    duck = SimpleNamespace(height=msg.height, width=msg.width, encoding=msg.encoding,
                           step=msg.step, data=data)
    np.testing.assert_array_equal(image_msg_to_bgr(duck), bgr)


def test_is_bigendian_is_irrelevant_for_8_bit(decoder):
    bgr = random_bgr(2)
    msg = make_image(encode_pixels(bgr, 'bgr8'), 'bgr8')
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_msg_to_bgr(msg), bgr)


def test_longer_data_than_needed_is_ignored(decoder):
    bgr = random_bgr(3)
    msg = make_image(encode_pixels(bgr, 'bgr8'), 'bgr8')
    msg.data = bytes(msg.data) + b'\x01\x02\x03'
    np.testing.assert_array_equal(image_msg_to_bgr(msg), bgr)


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', 'bayer_rggb8', 'yuv422', '32FC1', ''])
def test_unsupported_encoding_is_rejected_by_name(encoding):
    msg = make_image(np.zeros((2, 2, 2), np.uint8), encoding)
    with pytest.raises(ImageConversionError, match='unsupported image encoding') as error:
        image_msg_to_bgr(msg)
    assert repr(encoding) in str(error.value) and 'rgb8' in str(error.value)


@pytest.mark.parametrize('height, width', [(0, 4), (4, 0), (0, 0)])
def test_empty_image_is_rejected(height, width):
    msg = sensor_msgs.Image(height=height, width=width, encoding='bgr8', step=width * 3)
    with pytest.raises(ImageConversionError, match='empty'):
        image_msg_to_bgr(msg)


def test_short_data_is_rejected():
    msg = make_image(encode_pixels(random_bgr(), 'bgr8'), 'bgr8', padding=1)
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ImageConversionError, match=f'expected at least height \\* step = '
                       f'{HEIGHT} \\* {WIDTH * 3 + 1}'):
        image_msg_to_bgr(msg)


def test_step_smaller_than_a_row_is_rejected():
    msg = make_image(encode_pixels(random_bgr(), 'rgba8'), 'rgba8')
    msg.step = WIDTH * 4 - 1
    with pytest.raises(ImageConversionError, match='smaller than one row'):
        image_msg_to_bgr(msg)


def test_conversion_error_is_a_value_error():
    assert issubclass(ImageConversionError, ValueError)


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
def test_compressed_image_decodes(extension):
    bgr = random_bgr(4)
    ok, encoded = cv2.imencode(extension, bgr)
    assert ok
    msg = sensor_msgs.CompressedImage(format=extension[1:], data=encoded.tobytes())
    out = compressed_msg_to_bgr(msg)
    assert out.shape == bgr.shape and out.dtype == np.uint8
    if extension == '.png':  # lossless
        np.testing.assert_array_equal(out, bgr)


@pytest.mark.parametrize('data, fmt, message', [
    (b'', 'jpeg', 'no data'),
    (b'definitely not an image', 'jpeg', 'cannot decode'),
    (b'\x89PNG', 'png', 'cannot decode'),
    (b'\x00\x01', '16UC1; compressedDepth png', 'depth image'),
])
def test_compressed_errors(data, fmt, message):
    msg = sensor_msgs.CompressedImage(format=fmt, data=data)
    with pytest.raises(ImageConversionError, match=message):
        compressed_msg_to_bgr(msg)


def make_header(sec=12, nanosec=345, frame_id='camera_optical'):
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def test_stamp_to_ns():
    assert stamp_to_ns(make_header(12, 345).stamp) == 12_000_000_345
    assert stamp_to_ns(make_header(1_700_000_000, 999_999_999).stamp) == 1_700_000_000_999_999_999


def test_labels_and_mask_messages_round_trip(decoder):
    labels = np.random.default_rng(5).integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8)
    labels[0, 0] = 255
    header = make_header()
    for build in (labels_to_msg, mono_to_msg):
        msg = build(labels, header)
        assert (msg.encoding, msg.height, msg.width, msg.step) == ('mono8', HEIGHT, WIDTH, WIDTH)
        assert msg.header.frame_id == 'camera_optical' and stamp_to_ns(msg.header.stamp) == \
            stamp_to_ns(header.stamp)
        assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
        decoded = np.frombuffer(msg.data, np.uint8).reshape(HEIGHT, WIDTH)
        np.testing.assert_array_equal(decoded, labels)


def test_rgb_message_round_trips_and_decodes_back(decoder):
    bgr = random_bgr(6)
    rgb = bgr[..., ::-1]  # a non-contiguous view on purpose
    msg = rgb_to_msg(rgb, make_header())
    assert (msg.encoding, msg.step, msg.is_bigendian) == ('rgb8', WIDTH * 3, 0)
    np.testing.assert_array_equal(image_msg_to_bgr(msg), bgr)


@pytest.mark.parametrize('build, array_in, message', [
    (labels_to_msg, np.zeros((4, 4), np.int32), 'uint8'),
    (labels_to_msg, np.zeros((4, 4, 1), np.uint8), 'shape'),
    (mono_to_msg, np.zeros((4,), np.uint8), 'shape'),
    (rgb_to_msg, np.zeros((4, 4), np.uint8), 'shape'),
    (rgb_to_msg, np.zeros((4, 4, 4), np.uint8), 'shape'),
    (rgb_to_msg, np.zeros((4, 4, 3), np.float32), 'uint8'),
])
def test_output_constructors_validate_arrays(build, array_in, message):
    with pytest.raises(ImageConversionError, match=message):
        build(array_in, make_header())
