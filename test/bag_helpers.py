"""Small ROS 2 bags for the bag tests, and readers that give their messages back.

They are written with the plain ``rosbags`` API, not with the code under test.
"""

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORE = get_typestore(Stores.ROS2_HUMBLE)
Image = STORE.types['sensor_msgs/msg/Image']
CompressedImage = STORE.types['sensor_msgs/msg/CompressedImage']
Header = STORE.types['std_msgs/msg/Header']
Time = STORE.types['builtin_interfaces/msg/Time']
String = STORE.types['std_msgs/msg/String']

HEIGHT, WIDTH, FRAMES = 32, 64, 10
BAG_T0_NS = 1_700_000_000_000_000_000
STAMP_T0_S = 1_600_000_000
STORAGES = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
OUTPUTS = ('/camera/labels', '/camera/labels_color', '/camera/inconsistency_mask')


def frame_bgr(index):
    """uint8 (HEIGHT, WIDTH, 3): a random image whose blue channel is uniform (14 * index)."""
    image = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[..., 0] = 14 * index
    return image


def header(index):
    stamp = Time(sec=STAMP_T0_S + index, nanosec=1000 * index + 7)
    return Header(stamp=stamp, frame_id=f'cam_{index % 2}')


def write_input_bag(path, storage='sqlite3', compressed=False, broken_frame=None, qos=(),
                    frames=FRAMES, period_ns=50_000_000, frame=None):
    """Write a bag with ``frames`` images on /camera/image[/compressed].

    ``frame(index)`` (default :func:`frame_bgr`), one every ``period_ns``, and a String on
    /chatter after each.
    """
    topic, msgtype = ('/camera/image/compressed', CompressedImage.__msgtype__) if compressed \
        else ('/camera/image', Image.__msgtype__)
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        image_conn = writer.add_connection(topic, msgtype, typestore=STORE,
                                           offered_qos_profiles=qos)
        chatter = writer.add_connection('/chatter', String.__msgtype__, typestore=STORE)
        for index in range(frames):
            time_ns = BAG_T0_NS + index * period_ns
            msg = image_message(index, compressed, broken=index == broken_frame, frame=frame)
            writer.write(image_conn, time_ns, STORE.serialize_cdr(msg, msgtype))
            text = String(data=f'hello {index}')
            writer.write(chatter, time_ns + 1, STORE.serialize_cdr(text, String.__msgtype__))
    return topic


def image_message(index, compressed, broken=False, frame=None):
    pixels = (frame or frame_bgr)(index)
    if compressed:
        data = np.frombuffer(cv2.imencode('.png', pixels)[1].tobytes(), np.uint8)
        data = np.frombuffer(b'not an image', np.uint8) if broken else data
        return CompressedImage(header=header(index), format='png', data=data)
    height = pixels.shape[0] + 1 if broken else pixels.shape[0]  # more rows than its data holds
    return Image(header=header(index), height=height, width=pixels.shape[1], encoding='bgr8',
                 is_bigendian=0, step=pixels.shape[1] * 3, data=pixels.reshape(-1))


def moving_frame(index, height=HEIGHT, width=WIDTH):
    """uint8 (height, width, 3).

    A smooth texture moving right by 1 px per frame, with vertical bands of blue (14 * band) that
    move with it, so ``fake_models`` labels bands and the flow carries them.
    """
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (height, width + 64, 3), dtype=np.uint8),
                               (0, 0), 2.0)
    columns = np.arange(width + 64)
    texture[..., 0] = (14 * ((columns // 12) % 19)).astype(np.uint8)[None, :]
    return np.ascontiguousarray(texture[:, 64 - index % 64:64 - index % 64 + width])


def read_bag(path):
    """Return {topic: [(bag_time_ns, msgtype, deserialised message)]} and the storage id."""
    messages = {}
    with Reader(path) as reader:
        for conn, time_ns, rawdata in reader.messages():
            msg = STORE.deserialize_cdr(rawdata, conn.msgtype)
            messages.setdefault(conn.topic, []).append((time_ns, conn.msgtype, msg))
    return messages


def as_array(msg):
    channels = msg.step // msg.width
    return np.asarray(msg.data).reshape(msg.height, msg.width, channels).squeeze(-1) \
        if channels == 1 else np.asarray(msg.data).reshape(msg.height, msg.width, channels)


def stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def raw_messages(path):
    """{topic: [(bag_time_ns, msgtype, raw CDR bytes)]} in bag order (exact comparisons)."""
    messages = {}
    with Reader(path) as reader:
        for conn, time_ns, rawdata in reader.messages():
            messages.setdefault(conn.topic, []).append((time_ns, conn.msgtype, bytes(rawdata)))
    return messages
