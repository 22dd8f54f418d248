"""Label one recorded ROS 2 bag.

What ``evs bag`` does, and the pieces ``evs fleet`` splits it into.

The output bag holds every message of the input, unchanged, plus three topics next to the image
topic, with the same names and encodings the node publishes (design.md §5):

- ``<ns>/labels`` (mono8 trainIds, 255 = ignore),
- ``<ns>/labels_color`` (rgb8, palette colours),
- ``<ns>/inconsistency_mask`` (mono8, IAM mask 0..255, paper §3.4),

where ``<ns>`` is the namespace of the image topic (``/camera/image`` -> ``/camera``;
``/camera/image/compressed`` -> ``/camera``). Each output message carries the input's header and
is written at the input's bag time, right after its image, so players interleave it with the
camera stream. Frames are processed in bag order by the synchronous
:class:`~evs_ros.pipeline.pipeline.EvsPipeline`, so the result does not depend on the machine's
speed. No rclpy is needed (``rosbags`` does the I/O).

Three ways to the same output bag:

- :func:`process_bag`: the whole bag in one pass (``evs bag``, and ``evs fleet`` for short bags);
- :func:`label_chunk` writes the outputs of the frames in a time range into a *part* bag (only
  the three output topics), and :func:`merge_parts` copies the input and puts the parts' messages
  after their images: ``evs fleet`` for long bags, one chunk per task.

:func:`write_atomically` gives any of them a temporary name that is renamed when complete, and
``evs_summary.json`` (:data:`SUMMARY_FILE`) inside the bag directory says what was done.
"""

import json
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from evs_ros.data import rosbag_io
from evs_ros.data.image_messages import (
    ImageConversionError, compressed_msg_to_bgr, image_msg_to_bgr, stamp_to_ns)
from evs_ros.data.rosbag_io import (
    COMPRESSED_IMAGE_MSGTYPE, IMAGE_MSGTYPE, BagError, BagReader, BagWriter)

# (image_bgr uint8 (H, W, 3), stamp_ns) -> (labels uint8 (H, W), mask uint8 (H, W) or None)
# or (labels, mask, keyframe: bool)
ProcessFrame = Callable[[np.ndarray, int], tuple]
# labels uint8 (H, W) -> uint8 (H, W, 3) RGB
Colorize = Callable[[np.ndarray], np.ndarray]

OUTPUT_ENCODINGS = {'labels': 'mono8', 'labels_color': 'rgb8', 'inconsistency_mask': 'mono8'}
SUMMARY_FILE = 'evs_summary.json'
PART_STORAGE = 'mcap'
TEMP_MARK = '.evs-tmp-'
"""Part of every temporary output name (``.NAME.evs-tmp-<id>``): leftovers of a killed process
are recognised by it and removed by the next run."""


@dataclass
class BagSummary:
    """What one pass over a bag (or a chunk of it) did."""

    frames: int = 0
    """image messages labelled"""
    skipped_frames: int = 0
    """image messages that could not be decoded (copied, but no outputs)"""
    keyframes: int = 0
    """frames the network ran on (0 when the labeller does not say)"""
    messages_copied: int = 0
    """input messages written to the output (all topics; 0 for a part)"""
    output_topics: Tuple[str, ...] = ()
    elapsed_s: float = 0.0
    chunks: List[Tuple[int, int]] = field(default_factory=list)
    """(first frame, frames) of each chunk the labels were computed in"""


def output_topics(image_topic: str, compressed: bool = False) -> Dict[str, str]:
    """Return ``{'labels': '/ns/labels', ...}`` for the outputs that belong to ``image_topic``."""
    base = image_topic.rstrip('/')
    if compressed and base.endswith('/compressed'):
        base = base[:-len('/compressed')]
    namespace = base.rsplit('/', 1)[0] if '/' in base else ''
    return {name: f'{namespace}/{name}' for name in OUTPUT_ENCODINGS}


def process_bag(in_path: Path, out_path: Path, image_topic: str, process_frame: ProcessFrame,
                colorize: Optional[Colorize] = None, storage: Optional[str] = None,
                on_frame: Optional[Callable[[int], None]] = None) -> BagSummary:
    """Copy ``in_path`` to ``out_path`` and add EVS outputs for every frame on ``image_topic``.

    Args:
        in_path: input bag directory (sqlite3 or mcap).
        out_path: output bag directory; must not exist.
        image_topic: a ``sensor_msgs/msg/Image`` or ``CompressedImage`` topic of the input.
        process_frame: the segmentation, called once per frame in bag order.
        colorize: labels -> RGB colours; default the Cityscapes palette.
        storage: ``sqlite3`` or ``mcap``; default the input's storage.
        on_frame: called with the number of frames processed so far (progress).

    Raises:
        BagError: unreadable input, existing output, missing image topic or output topics that
            the input already has.
    """
    start = time.perf_counter()
    summary = BagSummary()
    with _open_output(in_path, out_path, image_topic, storage) as (reader, writer, outputs):
        frame_writer = _FrameWriter(writer, outputs.connections, outputs.msgtype, process_frame,
                                    colorize)
        _copy_and_label(reader, writer, image_topic, frame_writer.process, summary, on_frame)
        summary.keyframes = frame_writer.keyframes
    summary.output_topics = outputs.topics
    summary.elapsed_s = time.perf_counter() - start
    summary.chunks = [(0, summary.frames + summary.skipped_frames)]
    return summary


def label_chunk(in_path: Path, part_path: Path, image_topic: str, process_frame: ProcessFrame,
                start_ns: int, stop_ns: Optional[int], colorize: Optional[Colorize] = None,
                on_frame: Optional[Callable[[int], None]] = None) -> BagSummary:
    """Write the outputs of the frames at bag times in ``[start_ns, stop_ns)`` to a part bag.

    The part holds only the three output topics (as :func:`process_bag` writes them, in
    ``mcap`` storage); ``process_frame`` should start from a fresh state, so that the chunk's
    first frame is a keyframe. ``stop_ns`` None: up to the end of the bag.
    """
    start = time.perf_counter()
    summary = BagSummary()
    with BagReader(in_path) as reader:
        outputs = _Outputs.declare(reader, image_topic)
        with BagWriter(part_path, PART_STORAGE) as writer:
            connections = outputs.add_to(writer)
            frame_writer = _FrameWriter(writer, connections, outputs.msgtype, process_frame,
                                        colorize)
            for _, timestamp_ns, rawdata in reader.messages([image_topic], start_ns, stop_ns):
                _count(summary, frame_writer.process(timestamp_ns, rawdata), on_frame)
            summary.keyframes = frame_writer.keyframes
    summary.output_topics = outputs.topics
    summary.elapsed_s = time.perf_counter() - start
    return summary


def merge_parts(in_path: Path, out_path: Path, image_topic: str, part_paths: Sequence[Path],
                storage: Optional[str] = None) -> BagSummary:
    """Copy ``in_path`` to ``out_path`` with the outputs of the part bags after their images.

    The parts (from :func:`label_chunk`, in time order) together cover the whole bag; the result
    is the bag :func:`process_bag` writes when every chunk's labels equal the whole pass's.
    ``keyframes`` and ``chunks`` of the summary are left to the caller (the parts know them).
    """
    start = time.perf_counter()
    summary = BagSummary()
    with _open_output(in_path, out_path, image_topic, storage) as (reader, writer, outputs):
        replay = _PartReplay(writer, outputs.connections, outputs.topics, part_paths)
        _copy_and_label(reader, writer, image_topic, replay.process, summary, None)
        replay.check_exhausted()
    summary.output_topics = outputs.topics
    summary.elapsed_s = time.perf_counter() - start
    return summary


def _count(summary: BagSummary, labelled: bool, on_frame) -> None:
    if labelled:
        summary.frames += 1
    else:
        summary.skipped_frames += 1
    if on_frame is not None:
        on_frame(summary.frames)


@dataclass
class _Outputs:
    """The output topics of an image topic, and their connections once added to a writer."""

    msgtype: str
    topics: Tuple[str, ...]
    by_name: Dict[str, str]
    qos: list
    connections: Dict[str, object] = field(default_factory=dict)

    @classmethod
    def declare(cls, reader: BagReader, image_topic: str) -> '_Outputs':
        """Check the image topic and that the input has no output topic yet."""
        msgtype = check_image_topic(reader.topics(), image_topic)
        by_name = output_topics(image_topic, msgtype == COMPRESSED_IMAGE_MSGTYPE)
        _check_no_clash(reader.topics(), by_name)
        return cls(msgtype, tuple(by_name.values()), by_name, _offered_qos(reader, image_topic))

    def add_to(self, writer: BagWriter) -> Dict[str, object]:
        """Add the output connections (offered like the camera) to ``writer``."""
        self.connections = {name: writer.add_topic(topic, IMAGE_MSGTYPE, self.qos)
                            for name, topic in self.by_name.items()}
        return self.connections


@contextmanager
def _open_output(in_path, out_path, image_topic, storage):
    """(reader, writer, outputs) with the output connections added first, as ``evs bag``."""
    storage = storage or _default_storage(in_path)
    with BagReader(in_path) as reader:
        outputs = _Outputs.declare(reader, image_topic)
        with BagWriter(out_path, storage) as writer:
            outputs.add_to(writer)
            yield reader, writer, outputs


def _copy_and_label(reader: BagReader, writer: BagWriter, image_topic: str,
                    label: Callable[[int, bytes], bool], summary: BagSummary, on_frame) -> None:
    """Copy every message in bag order; after each image, write its outputs (``label``)."""
    copies = {}
    for connection, timestamp_ns, rawdata in reader.messages():
        if connection.id not in copies:
            copies[connection.id] = writer.copy_connection(connection)
        writer.write(copies[connection.id], timestamp_ns, rawdata)
        summary.messages_copied += 1
        if connection.topic == image_topic:
            _count(summary, label(timestamp_ns, rawdata), on_frame)


def _default_storage(in_path: Path) -> str:
    storage = rosbag_io.bag_storage(in_path)
    return storage if storage in rosbag_io.STORAGE_PLUGINS else rosbag_io.DEFAULT_STORAGE


def check_image_topic(topics: Dict[str, str], image_topic: str) -> str:
    """Return the msgtype of ``image_topic`` or raise with the image topics the bag has."""
    msgtype = topics.get(image_topic)
    if msgtype in (IMAGE_MSGTYPE, COMPRESSED_IMAGE_MSGTYPE):
        return msgtype
    images = sorted(t for t, m in topics.items() if m in (IMAGE_MSGTYPE, COMPRESSED_IMAGE_MSGTYPE))
    what = f'has type {msgtype}' if msgtype else 'is not in the bag'
    raise BagError(f'image topic {image_topic!r} {what}; image topics in the bag: '
                   f'{", ".join(images) or "none"} (pass one with --image-topic)')


def _offered_qos(reader: BagReader, topic: str) -> list:
    profiles = [qos for conn in reader.connections if conn.topic == topic
                for qos in conn.ext.offered_qos_profiles]
    return list(dict.fromkeys(profiles))  # unique, in order


def _check_no_clash(topics: Dict[str, str], outputs: Dict[str, str]) -> None:
    clashes = sorted(set(outputs.values()) & set(topics))
    if clashes:
        raise BagError(f'the input bag already has output topic(s) {", ".join(clashes)}; '
                       'was it processed before? Use the original recording')


class _FrameWriter:
    """Segments one image message and writes its three outputs."""

    def __init__(self, writer: BagWriter, out_connections, msgtype: str,
                 process_frame: ProcessFrame, colorize: Optional[Colorize]):
        if colorize is None:
            from evs_ros.data.labels import colorize
        self._writer = writer
        self._out_connections = out_connections
        self._msgtype = msgtype
        self._decode = (compressed_msg_to_bgr if msgtype == COMPRESSED_IMAGE_MSGTYPE
                        else image_msg_to_bgr)
        self._process_frame = process_frame
        self._colorize = colorize
        self.keyframes = 0

    def process(self, timestamp_ns: int, rawdata: bytes) -> bool:
        """Write the outputs of one frame; False when the message cannot be decoded."""
        msg = rosbag_io.deserialize(rawdata, self._msgtype)
        try:
            image_bgr = self._decode(msg)
        except ImageConversionError as error:
            print(f'evs bag: skipping frame at {timestamp_ns} ns: {error}', file=sys.stderr)
            return False
        if not image_bgr.flags.writeable:  # a view of the message: networks may want to own it
            image_bgr = image_bgr.copy()
        labels, mask, *keyframe = self._process_frame(image_bgr, stamp_to_ns(msg.header.stamp))
        self.keyframes += int(bool(keyframe and keyframe[0]))
        if mask is None:
            mask = np.zeros_like(labels)
        arrays = {'labels': labels, 'labels_color': self._colorize(labels),
                  'inconsistency_mask': mask}
        for name, image in arrays.items():
            out_msg = rosbag_io.image_from_array(image, OUTPUT_ENCODINGS[name], msg.header)
            self._writer.write_message(self._out_connections[name], timestamp_ns, out_msg)
        return True


class _PartReplay:
    """Writes the part bags' outputs of each image, in order, without decoding anything."""

    def __init__(self, writer: BagWriter, out_connections, topics: Sequence[str],
                 part_paths: Sequence[Path]):
        self._writer = writer
        self._by_topic = {topic: out_connections[name]
                          for name, topic in output_topics_by_name(topics).items()}
        self._group = len(topics)
        self._messages = self._read(part_paths)
        self._next = next(self._messages, None)

    @staticmethod
    def _read(part_paths) -> Iterator[Tuple[str, int, bytes]]:
        for path in part_paths:
            with BagReader(path) as reader:
                for connection, timestamp_ns, rawdata in reader.messages():
                    yield connection.topic, timestamp_ns, rawdata

    def process(self, timestamp_ns: int, rawdata: bytes) -> bool:
        """Write the part messages at ``timestamp_ns`` (one frame's outputs); False if none."""
        written = 0
        while self._next is not None and self._next[1] == timestamp_ns and \
                written < self._group:
            topic, _, data = self._next
            self._writer.write(self._by_topic[topic], timestamp_ns, data)
            written += 1
            self._next = next(self._messages, None)
        return written > 0

    def check_exhausted(self) -> None:
        if self._next is not None:
            raise BagError(f'a chunk has outputs at {self._next[1]} ns that match no image of '
                           'the input: was the input changed while it was being labelled?')


def output_topics_by_name(topics: Sequence[str]) -> Dict[str, str]:
    """``('/ns/labels', ...)`` (in :data:`OUTPUT_ENCODINGS` order) -> ``{'labels': ...}``."""
    return dict(zip(OUTPUT_ENCODINGS, topics))


# ---- atomic outputs and the per-bag summary ---------------------------------------------------

def temp_path(final_path: Path) -> Path:
    """Return a fresh temporary name next to ``final_path`` (same file system: atomic rename)."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    return final_path.with_name(f'.{final_path.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}')


def replace_path(temp: Path, final_path: Path) -> None:
    """Rename ``temp`` to ``final_path``, replacing what is there (a stale or identical copy)."""
    final_path = Path(final_path)
    if final_path.exists():
        old = temp_path(final_path)
        os.rename(final_path, old)
        os.rename(temp, final_path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(temp, final_path)


@contextmanager
def atomic_bag(final_path: Path):
    """Yield a temporary path to write a bag directory to.

    Rename it to ``final_path`` when the block completes, remove it when it fails.

    The bag is written as ``.NAME.evs-tmp-<id>/NAME`` so that its storage files already carry
    their final names (rosbag2 names them after the bag directory).
    """
    final_path = Path(final_path)
    holder = temp_path(final_path)
    holder.mkdir(parents=True)
    try:
        yield holder / final_path.name
        replace_path(holder / final_path.name, final_path)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def write_atomically(final_path: Path, write: Callable[[Path], BagSummary],
                     summary_extra: Optional[dict] = None) -> BagSummary:
    """Run ``write(temp)`` on a temporary bag path, add the summary, rename to ``final_path``.

    A failure removes the temporary bag; ``final_path`` is then untouched. The summary
    (``SUMMARY_FILE`` inside the bag) holds :class:`BagSummary` without the time taken, plus
    ``summary_extra``, so identical runs write identical bags.
    """
    with atomic_bag(final_path) as temp:
        summary = write(temp)
        write_summary(temp, summary, summary_extra)
    return summary


def write_summary(bag_path: Path, summary: BagSummary, extra: Optional[dict] = None) -> None:
    """Write :data:`SUMMARY_FILE` into the bag directory (deterministic: no times)."""
    data = {key: value for key, value in asdict(summary).items() if key != 'elapsed_s'}
    data['output_topics'] = list(summary.output_topics)
    data['chunks'] = [list(chunk) for chunk in summary.chunks]
    data.update(extra or {})
    with open(Path(bag_path) / SUMMARY_FILE, 'w', encoding='utf-8') as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.write('\n')


def read_summary(bag_path: Path) -> dict:
    """Return the :data:`SUMMARY_FILE` of an output bag ({} when there is none)."""
    try:
        with open(Path(bag_path) / SUMMARY_FILE, encoding='utf-8') as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return {}
