"""Decoding of ``sensor_msgs`` images to numpy, without ROS (design.md §5).

The decoders are duck-typed: they read only the fields of ``sensor_msgs/msg/Image`` (``height``,
``width``, ``encoding``, ``step``, ``data``) or ``sensor_msgs/msg/CompressedImage`` (``format``,
``data``), so they accept rclpy messages and the message objects that ``rosbags`` deserialises
alike. ``evs bag`` uses them directly; the node goes through ``evs_ros.ros.conversions``, which
prefers cv_bridge when it is installed and falls back to :func:`image_msg_to_bgr` here.
"""

import array

import cv2
import numpy as np

# encoding -> (channels, cv2 conversion to BGR or None when the data already is BGR)
_DECODERS = {
    'bgr8': (3, None),
    'rgb8': (3, cv2.COLOR_RGB2BGR),
    'bgra8': (4, cv2.COLOR_BGRA2BGR),
    'rgba8': (4, cv2.COLOR_RGBA2BGR),
    'mono8': (1, cv2.COLOR_GRAY2BGR),
    # OpenCV type names, interpreted like cv_bridge does (channels in BGR order)
    '8UC1': (1, cv2.COLOR_GRAY2BGR),
    '8UC3': (3, None),
    '8UC4': (4, cv2.COLOR_BGRA2BGR),
}
SUPPORTED_ENCODINGS = tuple(_DECODERS)


class ImageConversionError(ValueError):
    """A message cannot be converted to an image; the text says what is wrong and the fix.

    ``cause`` names the kind of problem (``encoding``, ``empty``, ``layout``, ``compressed``): a
    node logs one line per kind, however many messages share it.
    """

    def __init__(self, text: str, cause: str = 'conversion'):
        super().__init__(text)
        self.cause = cause


def stamp_to_ns(stamp) -> int:
    """Return a ``builtin_interfaces/Time`` (``sec``, ``nanosec``) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_msg_to_bgr(msg) -> np.ndarray:
    """Convert a ``sensor_msgs/msg/Image`` to a BGR image with numpy and OpenCV only.

    Args:
        msg: an Image with encoding ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` (or the
            OpenCV names ``8UC1``/``8UC3``/``8UC4``); rows may be padded (``step`` larger than
            ``width * channels``). ``is_bigendian`` does not matter for 8-bit data.

    Returns:
        uint8 array (H, W, 3), BGR, 0..255. For ``bgr8`` without padding it is a view of
        ``msg.data`` (no copy) and may be read-only; copy it before writing into it.

    Raises:
        ImageConversionError: unsupported encoding, zero width or height, ``step`` smaller than
            a row, or fewer than ``height * step`` bytes of data.
    """
    return _image_msg_to_bgr_numpy(msg, check_image_msg(msg))


def compressed_msg_to_bgr(msg) -> np.ndarray:
    """Decode a ``sensor_msgs/msg/CompressedImage`` (JPEG, PNG, ...) to uint8 BGR (H, W, 3).

    Raises:
        ImageConversionError: empty data, a ``compressedDepth`` image, or bytes that OpenCV
            cannot decode.
    """
    image_format = str(getattr(msg, 'format', ''))
    if 'compresseddepth' in image_format.lower():
        raise ImageConversionError(
            f'CompressedImage format {image_format!r} is a depth image; EVS needs a colour '
            'camera stream (subscribe to image/compressed, not image/compressedDepth)',
            'compressed')
    buffer = as_uint8_buffer(msg.data)
    if buffer.size == 0:
        raise ImageConversionError('CompressedImage has no data', 'compressed')
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(
            f'cannot decode CompressedImage (format {image_format!r}, {buffer.size} bytes): '
            'OpenCV does not recognise the data as an image (JPEG or PNG expected)', 'compressed')
    return bgr


def check_image_msg(msg) -> int:
    """Validate an Image's geometry and return its number of channels."""
    encoding = str(msg.encoding)
    if encoding not in _DECODERS:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r}: EVS takes 8-bit colour or mono images '
            f'({", ".join(SUPPORTED_ENCODINGS)}); convert or debayer upstream (e.g. image_proc)',
            'encoding')
    channels = _DECODERS[encoding][0]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f'image is empty ({width}x{height} pixels)', 'empty')
    if step < width * channels:
        raise ImageConversionError(
            f'step {step} is smaller than one row of {width} x {channels} bytes ({encoding})',
            'layout')
    size = len(msg.data)
    if size < height * step:
        raise ImageConversionError(
            f'image data has {size} bytes, expected at least height * step = '
            f'{height} * {step} = {height * step}', 'layout')
    return channels


def _image_msg_to_bgr_numpy(msg, channels: int) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    rows = as_uint8_buffer(msg.data)[:height * step].reshape(height, step)
    pixels = rows[:, :width * channels].reshape(height, width, channels)
    conversion = _DECODERS[str(msg.encoding)][1]
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def as_uint8_buffer(data) -> np.ndarray:
    """View message data (bytes, array.array, memoryview, ndarray or list) as flat uint8."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)
