"""Plain ROS 2 bag reading and writing on top of the ``rosbags`` package (no rclpy, no ROS).

Used by ``evs bag`` (design.md §1: recorded bags go through the same pipeline offline). Messages
are (de)serialised with the ``rosbags`` type store of ROS 2 Humble; ``sensor_msgs/msg/Image``,
``CompressedImage`` and ``std_msgs/msg/Header`` are identical in every ROS 2 distribution, so the
store only fixes the message definitions written for new topics.

Bag format: the ``rosbags`` writer offers rosbag2 format versions 8 and 9 only
(``Writer(path, version=8|9)``); we write version 8. Version 9 writes ``offered_qos_profiles`` as
a YAML list with enum names, which Humble's rosbag2 rejects ("yaml-cpp: bad conversion");
version 8 writes them as a string with integer enums, the layout Humble reads. Keys that Humble
does not know (``ros_distro``, ``custom_data``, ``type_description_hash``) are extra YAML keys that
its parser does not look up. QoS profiles of copied topics are kept (a Jazzy bag's profiles are
rewritten in the version-8 layout); new topics get the camera topic's profiles, or
:data:`DEFAULT_QOS` when it has none, never an empty string. Not verified against a real Humble
install here (no rosbag2 in this environment). Storage is ``sqlite3`` (Humble's default) or
``mcap`` (the default since Iron; on Humble it needs ``ros-humble-rosbag2-storage-mcap``).
"""

import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from rosbags.interfaces import (
    Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

IMAGE_MSGTYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_MSGTYPE = 'sensor_msgs/msg/CompressedImage'
BAG_FORMAT_VERSION = 8
STORAGE_PLUGINS = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
DEFAULT_STORAGE = 'sqlite3'
_QOS_DEFAULT_TIME = QosTime(sec=0, nsec=0)  # 0 = the RMW default (infinite)
# What a plain rclpy publisher offers (reliable, volatile, keep last): written for new topics
# whose source offers nothing, so that `ros2 bag play` has a profile to adapt to.
DEFAULT_QOS = Qos(
    history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
    durability=QosDurability.VOLATILE, deadline=_QOS_DEFAULT_TIME, lifespan=_QOS_DEFAULT_TIME,
    liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_QOS_DEFAULT_TIME,
    avoid_ros_namespace_conventions=False)


class BagError(RuntimeError):
    """A bag cannot be read or written; the text names the bag and the fix."""


@lru_cache(maxsize=1)
def typestore():
    """Give the shared ``rosbags`` type store, of ROS 2 Humble message definitions."""
    return get_typestore(Stores.ROS2_HUMBLE)


def deserialize(rawdata: bytes, msgtype: str):
    """Deserialise CDR bytes into a ``rosbags`` message object (arrays are numpy views)."""
    return typestore().deserialize_cdr(rawdata, msgtype)


def serialize(msg, msgtype: str) -> memoryview:
    """Serialise a ``rosbags`` message object to CDR (a bytes-like buffer, not copied again)."""
    return memoryview(typestore().serialize_cdr(msg, msgtype))


def make_header(stamp_ns: int, frame_id: str):
    """Build a ``std_msgs/msg/Header`` from integer nanoseconds and a frame id."""
    types = typestore().types
    stamp = types['builtin_interfaces/msg/Time'](
        sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def image_from_array(image: np.ndarray, encoding: str, header):
    """Build a ``rosbags`` ``sensor_msgs/msg/Image``.

    Args:
        image: uint8 (H, W) or (H, W, C), the pixels in the order ``encoding`` names.
        encoding: e.g. ``mono8``, ``rgb8``, ``bgr8``.
        header: a ``rosbags`` Header, usually the input message's, stored as is.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return typestore().types[IMAGE_MSGTYPE](
        header=header, height=int(image.shape[0]), width=int(image.shape[1]),
        encoding=encoding, is_bigendian=0, step=int(image.strides[0]), data=image.reshape(-1))


def bag_storage(path: Path) -> str:
    """Return the storage identifier (``sqlite3``, ``mcap``) written in a bag's metadata."""
    try:
        with open(Path(path) / 'metadata.yaml') as stream:
            info = yaml.safe_load(stream)['rosbag2_bagfile_information']
        return str(info['storage_identifier'])
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise BagError(f'{path} is not a readable ROS 2 bag directory: {error}') from error


@dataclass(frozen=True)
class BagInfo:
    """What a bag's ``metadata.yaml`` says, without opening its storage."""

    storage: str
    start_ns: int
    duration_ns: int
    message_counts: Dict[str, int]
    """messages per topic"""
    files: Tuple[str, ...] = ()
    """the storage files, relative to the bag directory"""
    compressed: bool = False


def bag_info(path: Path) -> BagInfo:
    """Read ``metadata.yaml``; BagError naming the bag when it is missing or malformed."""
    try:
        with open(Path(path) / 'metadata.yaml') as stream:
            info = yaml.safe_load(stream)['rosbag2_bagfile_information']
        counts = {str(entry['topic_metadata']['name']): int(entry['message_count'])
                  for entry in info.get('topics_with_message_count') or ()}
        return BagInfo(storage=str(info['storage_identifier']),
                       start_ns=int(info['starting_time']['nanoseconds_since_epoch']),
                       duration_ns=int(info['duration']['nanoseconds']), message_counts=counts,
                       files=tuple(str(name) for name in info.get('relative_file_paths') or ()),
                       compressed=str(info.get('compression_mode') or '').lower()
                       not in ('', 'none'))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise BagError(f'{path} is not a readable ROS 2 bag directory: {error}') from error


def _sqlite_timestamps(path: Path, topic: str) -> List[int]:
    """Return the timestamps of ``topic`` in one rosbag2 sqlite3 file (read-only, index only)."""
    try:
        with closing(sqlite3.connect(f'file:{path}?mode=ro', uri=True)) as database:
            rows = database.execute(
                'SELECT messages.timestamp FROM messages JOIN topics ON '
                'messages.topic_id = topics.id WHERE topics.name = ? ORDER BY messages.timestamp',
                (topic,)).fetchall()
    except sqlite3.Error as error:
        raise BagError(f'cannot read bag file {path}: {error}') from error
    return [int(row[0]) for row in rows]


class BagReader:
    """Read every message of a bag in time order, raw (serialised) or deserialised."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._reader = Reader(self.path)
        except FileNotFoundError as error:
            raise BagError(f'{self.path} is not a ROS 2 bag: {error}') from error

    def __enter__(self) -> 'BagReader':
        try:
            self._reader.open()
        except ReaderError as error:
            raise BagError(f'cannot read bag {self.path}: {error}') from error
        return self

    def __exit__(self, *exc_info) -> None:
        self._reader.close()

    @property
    def connections(self) -> Sequence[Connection]:
        """List the bag's connections: topic, msgtype, definition, QoS."""
        return self._reader.connections

    def topics(self) -> dict:
        """Return ``{topic: msgtype}`` for every topic in the bag."""
        return {conn.topic: conn.msgtype for conn in self._reader.connections}

    def messages(self, topics: Optional[Sequence[str]] = None, start_ns: Optional[int] = None,
                 stop_ns: Optional[int] = None) -> Iterator[Tuple[Connection, int, bytes]]:
        """Yield ``(connection, timestamp_ns, rawdata)`` in receive-time order.

        Args:
            topics: only these topics (None: all; topics the bag lacks yield nothing).
            start_ns: only messages at or after this bag time.
            stop_ns: only messages before this bag time.
        """
        connections = [conn for conn in self._reader.connections
                       if topics is None or conn.topic in topics]
        if not connections:  # rosbags reads an empty selection as "every connection"
            return iter(())
        return self._reader.messages(connections=connections, start=start_ns, stop=stop_ns)

    def timestamps(self, topic: str) -> List[int]:
        """Bag times (ns) of every message on ``topic``, in order.

        Uncompressed sqlite3 bags answer from the message table's index without reading the
        message data; other storages read the topic's messages once.
        """
        info = bag_info(self.path)
        paths = [self.path / Path(name).name for name in info.files]
        if info.storage == 'sqlite3' and not info.compressed and paths and \
                all(path.suffix == '.db3' for path in paths):
            return sorted(stamp for path in paths for stamp in _sqlite_timestamps(path, topic))
        return [timestamp for _, timestamp, _ in self.messages([topic])]


class BagWriter:
    """Write a rosbag2 bag (format version 8) in ``sqlite3`` or ``mcap`` storage."""

    def __init__(self, path: Path, storage: str = DEFAULT_STORAGE):
        if storage not in STORAGE_PLUGINS:
            raise BagError(f'unknown storage {storage!r}; choose one of {sorted(STORAGE_PLUGINS)}')
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'output bag {self.path} already exists; remove it or choose another '
                           'path')
        self.storage = storage
        self._writer = Writer(self.path, version=BAG_FORMAT_VERSION,
                              storage_plugin=STORAGE_PLUGINS[storage])

    def __enter__(self) -> 'BagWriter':
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self._writer.__exit__(exc_type, exc_value, traceback)
        if exc_type is not None:  # an aborted bag has no metadata: do not leave it behind
            shutil.rmtree(self.path, ignore_errors=True)

    def copy_connection(self, source: Connection) -> Connection:
        """Add a connection with the topic, type, definition and QoS of ``source``."""
        msgdef, digest = source.msgdef.data, source.digest
        if not (msgdef and digest):  # bags older than format 8 carry neither
            msgdef, digest = _definition_of(source.msgtype)
        return self._writer.add_connection(
            source.topic, source.msgtype, msgdef=msgdef, rihs01=digest,
            serialization_format=source.ext.serialization_format,
            offered_qos_profiles=source.ext.offered_qos_profiles)

    def add_topic(self, topic: str, msgtype: str,
                  offered_qos_profiles: Sequence[Qos] = ()) -> Connection:
        """Add a connection for a new topic whose type the type store knows.

        ``offered_qos_profiles`` empty: offer :data:`DEFAULT_QOS`.
        """
        return self._writer.add_connection(
            topic, msgtype, typestore=typestore(),
            offered_qos_profiles=list(offered_qos_profiles) or [DEFAULT_QOS])

    def write(self, connection: Connection, timestamp_ns: int, rawdata) -> None:
        """Write one serialised message (bytes-like) at bag time ``timestamp_ns``."""
        self._writer.write(connection, timestamp_ns, rawdata)

    def write_message(self, connection: Connection, timestamp_ns: int, msg) -> None:
        """Serialise a ``rosbags`` message object and write it."""
        self.write(connection, timestamp_ns, serialize(msg, connection.msgtype))


def _definition_of(msgtype: str) -> Tuple[str, str]:
    """Return (message definition, RIHS01 hash) from the type store, or placeholders.

    rosbag2 readers do not need either to read or play a bag; a type the store does not know
    (a custom message recorded by a Humble bag without definitions) is copied with an empty
    definition and an all-zero hash.
    """
    store = typestore()
    if msgtype in store.fielddefs:
        return store.generate_msgdef(msgtype, ros_version=2)[0], store.hash_rihs01(msgtype)
    return '', 'RIHS01_' + '0' * 64
