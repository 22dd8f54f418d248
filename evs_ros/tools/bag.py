"""``evs bag IN OUT``: run EVS over a recorded ROS 2 bag and write a new bag (design.md §1, §5).

The output bag holds every message of the input, unchanged, plus three topics next to the image
topic, with the same names and encodings the node publishes (design.md §5):

- ``<ns>/labels`` (mono8 trainIds, 255 = ignore),
- ``<ns>/labels_color`` (rgb8, palette colours),
- ``<ns>/inconsistency_mask`` (mono8, IAM mask 0..255, paper §3.4),

where ``<ns>`` is the namespace of the image topic (``/camera/image`` -> ``/camera``;
``/camera/image/compressed`` -> ``/camera``). Each output message carries the input's header and
is written at the input's bag time, so players interleave it with the camera stream. Frames are
processed in bag order by the synchronous :class:`~evs_ros.pipeline.pipeline.EvsPipeline`, so the
result does not depend on the machine's speed. No rclpy is needed (``rosbags`` does the I/O).
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from evs_ros.data import rosbag_io
from evs_ros.data.rosbag_io import (
    COMPRESSED_IMAGE_MSGTYPE, IMAGE_MSGTYPE, BagError, BagReader, BagWriter)
from evs_ros.data.image_messages import (
    ImageConversionError, compressed_msg_to_bgr, image_msg_to_bgr, stamp_to_ns)
from evs_ros.tools import common

# (image_bgr uint8 (H, W, 3), stamp_ns) -> (labels uint8 (H, W), mask uint8 (H, W) or None)
ProcessFrame = Callable[[np.ndarray, int], Tuple[np.ndarray, Optional[np.ndarray]]]
# labels uint8 (H, W) -> uint8 (H, W, 3) RGB
Colorize = Callable[[np.ndarray], np.ndarray]

OUTPUT_ENCODINGS = {'labels': 'mono8', 'labels_color': 'rgb8', 'inconsistency_mask': 'mono8'}


@dataclass
class BagSummary:
    """What :func:`process_bag` did."""

    frames: int = 0
    """image messages processed"""
    skipped_frames: int = 0
    """image messages that could not be decoded (copied, but no outputs)"""
    messages_copied: int = 0
    """input messages written to the output (all topics)"""
    output_topics: Tuple[str, ...] = ()
    elapsed_s: float = 0.0


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
    if colorize is None:
        from evs_ros.data.labels import colorize
    start = time.perf_counter()
    storage = storage or _default_storage(in_path)
    summary = BagSummary()
    with BagReader(in_path) as reader:
        image_msgtype = _check_image_topic(reader.topics(), image_topic)
        outputs = output_topics(image_topic, image_msgtype == COMPRESSED_IMAGE_MSGTYPE)
        _check_no_clash(reader.topics(), outputs)
        with BagWriter(out_path, storage) as writer:
            qos = _offered_qos(reader, image_topic)  # outputs are offered like the camera
            out_connections = {name: writer.add_topic(topic, IMAGE_MSGTYPE, qos)
                               for name, topic in outputs.items()}
            frame_writer = _FrameWriter(writer, out_connections, image_msgtype, process_frame,
                                        colorize)
            _copy_and_process(reader, writer, image_topic, frame_writer, summary, on_frame)
    summary.output_topics = tuple(outputs.values())
    summary.elapsed_s = time.perf_counter() - start
    return summary


def _copy_and_process(reader: BagReader, writer: BagWriter, image_topic: str,
                      frame_writer: '_FrameWriter', summary: BagSummary, on_frame) -> None:
    """Copy every message in bag order; after each image, write its outputs."""
    copies = {}
    for connection, timestamp_ns, rawdata in reader.messages():
        if connection.id not in copies:
            copies[connection.id] = writer.copy_connection(connection)
        writer.write(copies[connection.id], timestamp_ns, rawdata)
        summary.messages_copied += 1
        if connection.topic != image_topic:
            continue
        if frame_writer.process(timestamp_ns, rawdata):
            summary.frames += 1
        else:
            summary.skipped_frames += 1
        if on_frame is not None:
            on_frame(summary.frames)


def _default_storage(in_path: Path) -> str:
    storage = rosbag_io.bag_storage(in_path)
    return storage if storage in rosbag_io.STORAGE_PLUGINS else rosbag_io.DEFAULT_STORAGE


def _check_image_topic(topics: Dict[str, str], image_topic: str) -> str:
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
                 process_frame: ProcessFrame, colorize: Colorize):
        self._writer = writer
        self._out_connections = out_connections
        self._msgtype = msgtype
        self._decode = (compressed_msg_to_bgr if msgtype == COMPRESSED_IMAGE_MSGTYPE
                        else image_msg_to_bgr)
        self._process_frame = process_frame
        self._colorize = colorize

    def process(self, timestamp_ns: int, rawdata: bytes) -> bool:
        """Write the outputs of one frame; False when the message cannot be decoded."""
        msg = rosbag_io.deserialize(rawdata, self._msgtype)
        try:
            image_bgr = self._decode(msg)
        except ImageConversionError as error:
            print(f'evs bag: skipping frame at {timestamp_ns} ns: {error}', file=sys.stderr)
            return False
        labels, mask = self._process_frame(image_bgr, stamp_to_ns(msg.header.stamp))
        if mask is None:
            mask = np.zeros_like(labels)
        arrays = {'labels': labels, 'labels_color': self._colorize(labels),
                  'inconsistency_mask': mask}
        for name, image in arrays.items():
            out_msg = rosbag_io.image_from_array(image, OUTPUT_ENCODINGS[name], msg.header)
            self._writer.write_message(self._out_connections[name], timestamp_ns, out_msg)
        return True


def add_arguments(parser) -> None:
    """Declare the ``evs bag`` options."""
    parser.add_argument('input', type=Path, help='input ROS 2 bag directory')
    parser.add_argument('output', type=Path, help='output bag directory (must not exist)')
    parser.add_argument('--image-topic', default='/camera/image',
                        help='sensor_msgs/Image or CompressedImage topic (default: %(default)s)')
    common.add_config_arguments(parser, threads=False)
    parser.add_argument('--storage', choices=sorted(rosbag_io.STORAGE_PLUGINS), default=None,
                        help='output storage (default: same as the input)')


def build_process_frame(config) -> Tuple[ProcessFrame, Colorize]:
    """Load the models; return a :data:`ProcessFrame` over an EvsPipeline and its colouring."""
    from evs_ros.data.labels import Visualizer
    from evs_ros.models.loading import load_models
    from evs_ros.pipeline.pipeline import EvsPipeline
    model, refiner = load_models(config.model)
    pipeline = EvsPipeline(config, model, refiner)

    def process_frame(image_bgr: np.ndarray, stamp_ns: int):
        result = pipeline.process(image_bgr, stamp_ns)
        return result.labels, result.mask

    return process_frame, Visualizer.for_model(config, model).colorize


def run(args) -> int:
    """Process the bag; print a one-line summary."""
    try:
        config = common.build_config(args)
        process_frame, colorize = build_process_frame(config)
        summary = process_bag(args.input, args.output, args.image_topic, process_frame,
                              colorize, args.storage, _progress)
    except (BagError,) + common.USER_ERRORS as error:
        return common.fail('bag', error)
    rate_hz = summary.frames / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    print(f'\nevs bag: {summary.frames} frames ({summary.skipped_frames} skipped) at '
          f'{rate_hz:.1f} Hz with {config.operating_point.name}; '
          f'{summary.messages_copied} messages copied; wrote {", ".join(summary.output_topics)} '
          f'to {args.output}')
    return 0


def _progress(frames: int) -> None:
    if frames % 50 == 0:
        print(f'\revs bag: {frames} frames', end='', file=sys.stderr, flush=True)
