"""The ROS side of the cameras a node serves: subscriptions, publishers, status, diagnostics.

:class:`CameraSet` receives everything it needs (the node it lives on, the config, the runtime,
the visualizer) through its constructor and only converts and publishes: callbacks convert the
image and hand it to the camera's runtime stream; the stream's flow worker calls back with the
result, which is published with the input's header. Per camera (relative topics, so the namespace
and the camera prefix decide where they live):

- sub ``image`` (sensor_msgs/Image), optionally ``image/compressed``
- pub ``labels`` (mono8 class ids, 255 = ignore), ``labels_color`` (rgb8), ``overlay`` (rgb8),
  ``inconsistency_mask`` (mono8 0..255), ``status`` (evs_ros/FrameStatus), ``label_info``
  (vision_msgs/LabelInfo, transient local, when vision_msgs is installed)
- pub ``/diagnostics`` (one entry per camera, named ``<node fully qualified name>: <camera>``)

Outputs nobody subscribes to are not computed. Bad input messages are rejected with a logged
reason and counted; the node never stops for them. After :meth:`CameraSet.close` returns nothing
is published any more.
"""

import collections
import math
import threading
import time
from typing import Dict, List

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image

from evs_ros.msg import FrameStatus
from evs_ros.pipeline.results import STAGES as RESULT_STAGES
from evs_ros.ros import conversions, qos
from evs_ros.ros.label_info import publish_label_info

DIAGNOSTICS_PERIOD_S = 1.0
REPEAT_LOG_PERIOD_S = 5.0
OUTPUT_TOPICS = ('labels', 'labels_color', 'overlay', 'inconsistency_mask', 'status')
STAGES = RESULT_STAGES + ('total_ms',)
MAX_DISTINCT_ERRORS = 64


class CameraIO:
    """Subscriptions, publishers and counters of one camera (topics under ``prefix``)."""

    def __init__(self, node, name: str, owner: 'CameraSet'):
        prefix = f'{name}/' if name else ''
        self.name = name or 'camera'
        self.node, self.owner = node, owner
        self.stream = None
        self.rejected = self.accepted = self.rejected_stamps = self.dropped = 0
        self.outputs = self.outputs_at_last_diag = 0
        self.published = collections.Counter()
        self.error_texts = set()
        publish = owner.config.publish
        self.publishers = {topic: node.create_publisher(
            FrameStatus if topic == 'status' else Image, prefix + topic,
            qos.output_profile(publish), qos_overriding_options=qos.overrides())
            for topic in OUTPUT_TOPICS}
        self.label_info = publish_label_info(node, prefix + 'label_info',
                                             owner.visualizer.class_names)
        self.subscriptions = [node.create_subscription(
            Image, prefix + 'image', self.on_image, qos.input_profile(publish),
            qos_overriding_options=qos.overrides())]
        if publish.subscribe_compressed:
            self.subscriptions.append(node.create_subscription(
                CompressedImage, prefix + 'image/compressed', self.on_compressed,
                qos.input_profile(publish), qos_overriding_options=qos.overrides()))

    def on_image(self, msg: Image) -> None:
        self._submit(msg, conversions.image_msg_to_bgr)

    def on_compressed(self, msg: CompressedImage) -> None:
        self._submit(msg, conversions.compressed_msg_to_bgr)

    def _submit(self, msg, convert) -> None:
        try:
            image_bgr = convert(msg)
        except Exception as error:  # noqa: B902 - no input may stop the node
            self.rejected += 1
            self._log_rejection(error)
            return
        meta = (msg.header, time.monotonic(), image_bgr)
        if self.stream.submit(image_bgr, conversions.stamp_to_ns(msg.header.stamp), meta):
            self.accepted += 1
        else:  # the stream logs why
            self.rejected_stamps += 1

    def _log_rejection(self, error: Exception) -> None:
        """Log every distinct reason once, repeats at most every REPEAT_LOG_PERIOD_S."""
        text = f'[{self.name}] input image rejected ({self.rejected} so far): {error}'
        reason = f'{type(error).__name__}: {error}'
        if reason not in self.error_texts and len(self.error_texts) < MAX_DISTINCT_ERRORS:
            self.error_texts.add(reason)
            self.node.get_logger().error(text)
        else:
            self.node.get_logger().error(text, throttle_duration_sec=REPEAT_LOG_PERIOD_S)

    def wanted(self, topic: str) -> bool:
        """Tell whether ``topic`` is switched on and somebody subscribes to it."""
        return (getattr(self.owner.config.publish, topic)
                and self.publishers[topic].get_subscription_count() > 0)

    def publish(self, result) -> None:
        """Publish one FrameResult (runs on the stream's flow-worker thread).

        Colours and the overlay are only computed for topics that have subscribers.
        """
        header, _, image_bgr = result.meta
        visualizer = self.owner.visualizer
        colors_rgb = None
        if self.wanted('labels'):
            self._send('labels', conversions.labels_to_msg(result.labels, header))
        if self.wanted('labels_color') or self.wanted('overlay'):
            colors_rgb = visualizer.colorize(result.labels)
        if self.wanted('labels_color'):
            self._send('labels_color', conversions.rgb_to_msg(colors_rgb, header))
        if self.wanted('overlay'):
            overlay_rgb = visualizer.overlay(image_bgr, colors_rgb)
            self._send('overlay', conversions.rgb_to_msg(overlay_rgb, header))
        if self.wanted('inconsistency_mask'):
            self._send('inconsistency_mask', conversions.mono_to_msg(result.mask, header))
        self.dropped += int(result.info.dropped_frames)
        if self.wanted('status'):
            self._send('status', self.status_msg(result.info, header, result.meta[1]))
        self.outputs += 1

    def _send(self, topic: str, msg) -> None:
        self.publishers[topic].publish(msg)
        self.published[topic] += 1

    def status_msg(self, info, header, received_s: float) -> FrameStatus:
        msg = FrameStatus(header=header, camera=self.name,
                          operating_point=info.operating_point, keyframe=bool(info.keyframe),
                          frames_since_keyframe=int(info.frames_since_keyframe),
                          refined=bool(info.refined),
                          inconsistent_fraction=float(info.inconsistent_fraction))
        for stage in STAGES:
            setattr(msg, stage, float(getattr(info, stage)))
        msg.latency_ms = (time.monotonic() - received_s) * 1000.0
        rejected = self.rejected + self.rejected_stamps
        msg.frames_received = self.accepted + rejected
        msg.frames_dropped = self.dropped
        msg.frames_rejected = rejected
        return msg

    def destroy(self) -> None:
        """Destroy the subscriptions and publishers (the stream must be closed first)."""
        for entity in self.subscriptions:
            self.node.destroy_subscription(entity)
        for entity in list(self.publishers.values()) + [self.label_info]:
            if entity is not None:
                self.node.destroy_publisher(entity)


class CameraSet:
    """All cameras of one node plus its diagnostics.

    Args:
        node: the rclpy node (plain or lifecycle) the topics live on.
        config: the node's validated :class:`~evs_ros.config.EvsConfig`.
        runtime: the (possibly shared) :class:`~evs_ros.pipeline.runtime.EvsRuntime`.
        visualizer: the :class:`~evs_ros.data.labels.Visualizer` of the network's classes.
        camera_names: camera namespaces ('' = the node's own topics).
    """

    def __init__(self, node, config, runtime, visualizer, camera_names: List[str]):
        self.node, self.config, self.runtime, self.visualizer = node, config, runtime, visualizer
        self.name = node.get_fully_qualified_name()
        self.cameras: Dict[str, CameraIO] = {}
        try:
            for camera in camera_names:
                io = CameraIO(node, camera, self)
                self.cameras[camera] = io
                io.stream = runtime.add_stream(self._stream_name(io), io.publish, config)
        except BaseException:  # a shared runtime must not keep streams of a refused node
            self._close_cameras()
            raise
        self._diag_lock, self._closed = threading.Lock(), False
        self.pub_diagnostics = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.diag_timer = node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)

    def _stream_name(self, io: CameraIO) -> str:
        return f'{self.name}: {io.name}'

    def set_config(self, config) -> None:
        """Run-time changes: operating point, flow and IAM settings, overlay weight, toggles."""
        for io in self.cameras.values():
            io.stream.set_config(config)
        self.visualizer.alpha = config.publish.overlay_alpha
        self.config = config

    def close(self) -> None:
        """Stop the streams (nothing is published afterwards), then destroy the topics."""
        with self._diag_lock:  # a multi-threaded executor may be in publish_diagnostics
            self._closed = True
            self.node.destroy_timer(self.diag_timer)
        self._close_cameras()
        self.node.destroy_publisher(self.pub_diagnostics)

    def _close_cameras(self) -> None:
        for io in self.cameras.values():
            if io.stream is not None:
                self.runtime.remove_stream(self._stream_name(io))
            io.destroy()
        self.cameras = {}

    def publish_diagnostics(self) -> None:
        with self._diag_lock:
            if self._closed or not self.config.publish.diagnostics:
                return
            array = DiagnosticArray()
            array.header.stamp = self.node.get_clock().now().to_msg()
            array.status = [self._camera_diagnostics(io) for io in self.cameras.values()]
            self.pub_diagnostics.publish(array)

    def _camera_diagnostics(self, io: CameraIO) -> DiagnosticStatus:
        stats = io.stream.stats()
        hz = (io.outputs - io.outputs_at_last_diag) / DIAGNOSTICS_PERIOD_S
        io.outputs_at_last_diag = io.outputs
        problems = [f'{count} {what}' for count, what in (
            (int(stats.get('errors', 0)), 'model errors'),
            (io.rejected + int(stats.get('rejected', 0)), 'inputs rejected')) if count]
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        message = ', '.join(problems) + ' (see log)' if problems else 'ok'
        values = {'output_hz': f'{hz:.1f}', 'operating_point': self.config.operating_point.name,
                  'rejected_bad_messages': str(io.rejected)}
        values.update({f'published_{topic}': str(io.published[topic])
                       for topic in OUTPUT_TOPICS})
        values.update({key: _fmt(value) for key, value in stats.items()})
        return DiagnosticStatus(level=level, name=self._stream_name(io), message=message,
                                hardware_id=io.name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])


def _fmt(value) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)
