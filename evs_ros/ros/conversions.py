"""Conversions between ``sensor_msgs`` images and numpy arrays (design.md §5).

The node converts every incoming message to numpy exactly once here and stays in numpy afterwards
(the nav2_simple_commander habit). The numpy decoders live in ``evs_ros.data.image_messages``
(``evs bag`` uses them without ROS); this module re-exports them and, for raw images, prefers
``cv_bridge`` when it is importable; both paths return the same array.

Encoding copies the array once into an ``array.array('B')``: assigning ``bytes`` to a ``uint8[]``
field of an rclpy message is checked element by element when field checks are on (always on
Humble), which costs hundreds of times more for a large image (docs/benchmarks.md, "Design
measurements").
"""

import array

import numpy as np

from evs_ros.data.image_messages import (  # noqa: F401 (re-exported for the node)
    SUPPORTED_ENCODINGS, ImageConversionError, check_image_msg, compressed_msg_to_bgr,
    image_msg_to_bgr as _image_msg_to_bgr_numpy, stamp_to_ns)

_UNSET = object()
_cv_bridge = _UNSET  # a CvBridge instance, or None when cv_bridge is not importable


def image_msg_to_bgr(msg) -> np.ndarray:
    """Convert a ``sensor_msgs/msg/Image`` to uint8 BGR (H, W, 3) with cv_bridge if present.

    Same contract (encodings, padding, errors) as
    :func:`evs_ros.data.image_messages.image_msg_to_bgr`, which it uses without cv_bridge.
    """
    bridge = _get_cv_bridge()
    if bridge is None:
        return _image_msg_to_bgr_numpy(msg)
    check_image_msg(msg)
    return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding='bgr8'))


def labels_to_msg(labels: np.ndarray, header):
    """Build a ``mono8`` Image from trainId labels: uint8 (H, W), 0..18, 255 = ignore."""
    return array_to_image_msg(_require_shape(labels, 2, 'labels'), 'mono8', header)


def mono_to_msg(mask: np.ndarray, header):
    """Build a ``mono8`` Image from a single-channel uint8 (H, W) image such as a mask."""
    return array_to_image_msg(_require_shape(mask, 2, 'mask'), 'mono8', header)


def rgb_to_msg(rgb: np.ndarray, header):
    """Build an ``rgb8`` Image from a uint8 (H, W, 3) RGB image, for example coloured labels."""
    return array_to_image_msg(_require_shape(rgb, 3, 'rgb'), 'rgb8', header)


def array_to_image_msg(image: np.ndarray, encoding: str, header):
    """Build an rclpy ``sensor_msgs/msg/Image`` from a uint8 (H, W) or (H, W, C) array.

    The array is copied once into the message (``array.array('B')``, the fast path of the
    generated setter); ``header`` is assigned as is, so outputs carry the input's stamp and frame.
    """
    from sensor_msgs.msg import Image

    image = np.ascontiguousarray(image)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(image.strides[0])
    msg.data = uint8_array(image)
    return msg


def uint8_array(image: np.ndarray) -> array.array:
    """Copy a C-contiguous numpy array into an ``array.array('B')`` (one memcpy)."""
    data = array.array('B')
    data.frombytes(memoryview(np.ascontiguousarray(image)).cast('B'))
    return data


def _require_shape(image: np.ndarray, ndim: int, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageConversionError(f'{name} must be uint8, got {image.dtype}')
    if image.ndim != ndim or (ndim == 3 and image.shape[2] != 3):
        expected = '(H, W)' if ndim == 2 else '(H, W, 3)'
        raise ImageConversionError(f'{name} must have shape {expected}, got {image.shape}')
    return image


def _get_cv_bridge():
    """Return a shared CvBridge, or None when cv_bridge is not installed."""
    global _cv_bridge
    if _cv_bridge is _UNSET:
        try:
            from cv_bridge import CvBridge
            _cv_bridge = CvBridge()
        except ImportError:
            _cv_bridge = None
    return _cv_bridge
