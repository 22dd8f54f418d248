"""The ROS side of the cameras a node serves: subscriptions, publishers, status, diagnostics.

:class:`CameraSet` receives everything it needs (the node it lives on, the config, the runtime,
the visualizer) through its constructor and only converts and publishes. Built, it holds the
publishers; :meth:`CameraSet.start` subscribes and opens one runtime stream per camera,
:meth:`CameraSet.stop` closes them again (nothing is published after it returns) and
:meth:`CameraSet.close` also destroys the publishers. A lifecycle node's publishers are lifecycle
publishers: they stay while the node is inactive, silent. Callbacks convert the image and hand it
to the camera's stream; the stream's flow worker calls back with the result, which is published
with the input's header. Per camera (relative topics, so the namespace and the camera prefix
decide where they live):

- sub ``image`` (sensor_msgs/Image), or with ``publish.subscribe_compressed`` the compressed
  transport of the (remapped) image topic, ``<image>/compressed`` (sensor_msgs/CompressedImage)
- sub ``camera_info`` beside the image topic (image_transport's convention: ``/cam/image_raw``
  -> ``/cam/camera_info``), republished as ``camera_info`` beside ``labels`` with each output's
  header (``publish.camera_info``), so that fusion gets the intrinsics of the label image; not
  when the two are the same topic (the camera's own camera_info already sits beside the labels)
- pub ``labels`` (mono8 class ids, 255 = ignore), ``labels_color`` (rgb8), ``overlay`` (rgb8),
  ``inconsistency_mask`` (mono8 0..255), ``status`` (evs_ros/FrameStatus), ``label_info``
  (vision_msgs/LabelInfo, transient local, when vision_msgs is installed)
- pub ``/diagnostics`` (one entry per camera, named ``<node fully qualified name>: <camera>``;
  levels: :mod:`evs_ros.ros.health`)

Outputs nobody subscribes to are not computed. Bad input messages are refused, counted per cause
and logged in one throttled line per cause; the node never stops for them.
"""

import collections
import math
import threading
import time
from typing import Callable, Dict, List, Optional

import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from evs_ros.msg import FrameStatus
from evs_ros.pipeline.results import STAGES as RESULT_STAGES
from evs_ros.ros import conversions, health, qos
from evs_ros.ros.label_info import label_info_publisher, publish_label_info
from evs_ros.ros.logs import REPEAT_LOG_PERIOD_S

DIAGNOSTICS_PERIOD_S = 1.0
PUBLISH_QUEUE = 2
"""Results that may wait for a camera's publishing thread."""
OUTPUT_TOPICS = ('labels', 'labels_color', 'overlay', 'inconsistency_mask', 'status')
STAGES = RESULT_STAGES + ('total_ms',)


def create_publisher(node, msg_type, topic: str, qos_profile, **kwargs):
    """Create a publisher of ``node``.

    A lifecycle node gets a lifecycle publisher (enabled while the node is active, silent
    otherwise).
    """
    create = getattr(node, 'create_lifecycle_publisher', None) or node.create_publisher
    return create(msg_type, topic, qos_profile, **kwargs)


def destroy_publisher(node, publisher) -> None:
    destroy = getattr(node, 'destroy_lifecycle_publisher', None) or node.destroy_publisher
    destroy(publisher)


def camera_info_topic(image_topic: str) -> str:
    """Return the camera_info beside an image topic: `/cam/image_raw` -> `/cam/camera_info`."""
    return image_topic.rsplit('/', 1)[0] + '/camera_info'


class RejectionLog:
    """Counts refused inputs per cause and logs them, one line per cause at a time.

    At most one line per cause every :data:`~evs_ros.ros.logs.REPEAT_LOG_PERIOD_S` (rclpy
    throttles per logger object).

    Args:
        logger_name: the node's ROS logger name (lines carry it and reach /rosout).
        make_logger: ``name -> rclpy logger`` (injectable for tests).
    """

    def __init__(self, logger_name: str, make_logger: Callable = rclpy.logging.get_logger):
        self.logger_name, self.make_logger = logger_name, make_logger
        self.counts = collections.Counter()
        self.loggers = {}

    def refuse(self, camera: str, error: Exception) -> None:
        cause = getattr(error, 'cause', type(error).__name__)
        self.counts[cause] += 1
        logger = self.loggers.get(cause)
        if logger is None:
            logger = self.loggers[cause] = self.make_logger(self.logger_name)
        logger.warning(f'[{camera}] input refused ({cause}, {self.counts[cause]} so far; one '
                       f'line per cause every {REPEAT_LOG_PERIOD_S:g} s): {error}',
                       throttle_duration_sec=REPEAT_LOG_PERIOD_S)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class PublishThread:
    """Publishes a camera's results on a thread of its own, in order, every one of them.

    The flow worker hands results over with :meth:`put` and goes on with the next frame's flow;
    making the colours, the overlay and the messages costs as much as a propagated frame's flow
    when every output has subscribers (docs/benchmarks.md section 17). At most
    :data:`PUBLISH_QUEUE` results wait: a flow worker that is faster than publishing waits for
    room (nothing is dropped here; the input buffer drops the oldest frames instead).

    Args:
        publish: ``result -> None``, run on this thread.
        name: thread name.
    """

    def __init__(self, publish: Callable, name: str):
        self.publish = publish
        self.pending = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def put(self, result) -> None:
        with self.cond:
            while len(self.pending) >= PUBLISH_QUEUE and not self.closed:
                self.cond.wait()
            if not self.closed:
                self.pending.append(result)
                self.cond.notify_all()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop: results still waiting are dropped, and nothing is published after this."""
        with self.cond:
            self.closed = True
            self.pending.clear()
            self.cond.notify_all()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                result = self.pending.popleft()
                self.cond.notify_all()
            self.publish(result)


class CameraIO:
    """Subscriptions, publishers and counters of one camera (topics under ``prefix``)."""

    def __init__(self, node, name: str, owner: 'CameraSet'):
        self.prefix = f'{name}/' if name else ''
        self.name = name or 'camera'
        self.node, self.owner = node, owner
        self.stream = self.publisher = None
        self.subscriptions = []
        self.rejections = RejectionLog(node.get_logger().name)
        self.accepted = self.rejected_stamps = self.dropped = self.outputs = 0
        self.errors_seen = 0
        self.published = collections.Counter()
        self.camera_info: Optional[CameraInfo] = None
        self.health = health.CameraHealth(owner.config.publish)
        publish = owner.config.publish
        self.publishers = {topic: create_publisher(
            node, FrameStatus if topic == 'status' else Image, self.prefix + topic,
            qos.output_profile(publish), qos_overriding_options=qos.overrides())
            for topic in OUTPUT_TOPICS}
        self.label_info = label_info_publisher(
            lambda *args: create_publisher(node, *args), self.prefix + 'label_info')
        self.image_topic = node.resolve_topic_name(self.prefix + 'image')
        self.info_in_topic = camera_info_topic(self.image_topic)
        info_out_topic = node.resolve_topic_name(self.prefix + 'camera_info')
        self.info_publisher = None
        if publish.camera_info and self.info_in_topic != info_out_topic:
            self.info_publisher = create_publisher(node, CameraInfo, info_out_topic,
                                                   qos.output_profile(publish),
                                                   qos_overriding_options=qos.overrides())

    @property
    def rejected(self) -> int:
        """Messages refused so far (conversion, size or stamp)."""
        return self.rejections.total + self.rejected_stamps

    def on_output(self, result) -> None:
        """Take the stream's output (flow-worker thread): hand it over to the publisher."""
        if self.publisher is not None:
            self.publisher.put(result)
        else:
            self.publish(result)

    def start(self, stream) -> None:
        """Subscribe the inputs; frames go to ``stream``.

        ``stream``: a runtime stream whose ``on_output`` is :meth:`on_output`.
        """
        self.stream, self.errors_seen = stream, 0
        self.health = health.CameraHealth(self.owner.config.publish)
        publish = self.owner.config.publish
        profile, overrides = qos.input_profile(publish), qos.overrides()
        if publish.subscribe_compressed:
            self.subscriptions = [self.node.create_subscription(
                CompressedImage, self.image_topic + '/compressed', self.on_compressed, profile,
                qos_overriding_options=overrides)]
        else:
            self.subscriptions = [self.node.create_subscription(
                Image, self.prefix + 'image', self.on_image, profile,
                qos_overriding_options=overrides)]
        if self.info_publisher is not None:
            self.subscriptions.append(self.node.create_subscription(
                CameraInfo, self.info_in_topic, self.on_camera_info, profile))
        publish_label_info(self.node, self.label_info, self.owner.visualizer.class_names)

    def stop(self) -> None:
        """Stop publishing and destroy the subscriptions (the stream must be closed first)."""
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        for entity in self.subscriptions:
            self.node.destroy_subscription(entity)
        self.subscriptions, self.stream = [], None

    def destroy(self) -> None:
        """Destroy the publishers (after :meth:`stop`)."""
        for entity in list(self.publishers.values()) + [self.label_info, self.info_publisher]:
            if entity is not None:
                destroy_publisher(self.node, entity)
        self.publishers, self.label_info, self.info_publisher = {}, None, None

    def on_image(self, msg: Image) -> None:
        self._submit(msg, conversions.image_msg_to_bgr)

    def on_compressed(self, msg: CompressedImage) -> None:
        self._submit(msg, conversions.compressed_msg_to_bgr)

    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _submit(self, msg, convert) -> None:
        self.health.frame_arrived()
        stream = self.stream
        if stream is None:  # stopped meanwhile
            return
        try:
            image_bgr = convert(msg)
            meta = (msg.header, time.monotonic(), image_bgr)
            accepted = stream.submit(image_bgr, conversions.stamp_to_ns(msg.header.stamp), meta)
        except Exception as error:  # noqa: B902 - no input may stop the node
            self.rejections.refuse(self.name, error)
            self.health.rejected(self.accepted + self.rejected)
            return
        if accepted:
            self.accepted += 1
            if self.accepted == 1:
                self.node.get_logger().debug(
                    f'[{self.name}] first frame: {image_bgr.shape[1]}x{image_bgr.shape[0]} '
                    f'from {self.image_topic}')
        else:  # the stream logs why
            self.rejected_stamps += 1
            self.health.rejected(self.accepted + self.rejected)

    def wanted(self, topic: str) -> bool:
        """Tell whether ``topic`` is switched on and somebody subscribes to it."""
        return (getattr(self.owner.config.publish, topic)
                and self.publishers[topic].get_subscription_count() > 0)

    def publish(self, result) -> None:
        """Publish one FrameResult (runs on the stream's flow-worker thread).

        Colours and the overlay are only computed for topics that have subscribers.
        """
        header, _, image_bgr = result.meta
        self._note_failures()
        visualizer = self.owner.visualizer
        colors_rgb = None
        if self.wanted('labels'):
            self._send('labels', conversions.labels_to_msg(result.labels, header))
        self._send_camera_info(header)
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

    def _note_failures(self) -> None:
        """Tell the health about network failures counted since the last output."""
        errors = self.stream.errors if self.stream is not None else 0
        if errors > self.errors_seen:
            self.errors_seen = errors
            self.health.failed(self.accepted + self.rejected)

    def _send(self, topic: str, msg) -> None:
        self.publishers[topic].publish(msg)
        self.published[topic] += 1

    def _send_camera_info(self, header) -> None:
        info = self.camera_info
        if (info is None or self.info_publisher is None
                or self.info_publisher.get_subscription_count() == 0):
            return
        self.info_publisher.publish(CameraInfo(
            header=header, height=info.height, width=info.width,
            distortion_model=info.distortion_model, d=info.d, k=info.k, r=info.r, p=info.p,
            binning_x=info.binning_x, binning_y=info.binning_y, roi=info.roi))
        self.published['camera_info'] += 1

    def status_msg(self, info, header, received_s: float) -> FrameStatus:
        msg = FrameStatus(header=header, camera=self.name,
                          operating_point=info.operating_point,
                          keyframe_requested=bool(info.keyframe),
                          labels_from_network=info.frames_since_keyframe == 0,
                          frames_since_keyframe=int(info.frames_since_keyframe),
                          refined=bool(info.refined),
                          inconsistent_fraction=float(info.inconsistent_fraction))
        for stage in STAGES:
            setattr(msg, stage, float(getattr(info, stage)))
        msg.latency_ms = (time.monotonic() - received_s) * 1000.0
        msg.frames_received = self.accepted + self.rejected
        msg.frames_dropped = self.dropped
        msg.frames_rejected = self.rejected
        return msg

    def counters(self, stats) -> health.Counters:
        """Return the counts :class:`~evs_ros.ros.health.CameraHealth` judges."""
        return health.Counters(received=self.accepted + self.rejected, rejected=self.rejected,
                               outputs=self.outputs,
                               network_errors=int(stats.get('errors', 0)))


class CameraSet:
    """All cameras of one node plus its diagnostics.

    Args:
        node: the rclpy node (plain or lifecycle) the topics live on.
        config: the node's validated :class:`~evs_ros.config.EvsConfig`.
        runtime: the (possibly shared) :class:`~evs_ros.pipeline.runtime.EvsRuntime`.
        visualizer: the :class:`~evs_ros.data.labels.Visualizer` of the network's classes.
        camera_names: camera namespaces ('' = the node's own topics).
        publish_thread: publish each camera's outputs on a thread of its own
            (:class:`PublishThread`); False publishes on the stream's flow worker (measurements).
    """

    def __init__(self, node, config, runtime, visualizer, camera_names: List[str],
                 publish_thread: bool = True):
        self.node, self.config, self.runtime, self.visualizer = node, config, runtime, visualizer
        self.publish_thread = publish_thread
        self.name = node.get_fully_qualified_name()
        self.cameras: Dict[str, CameraIO] = {}
        self._diag_lock = threading.Lock()
        self.diag_timer = None
        try:
            for camera in camera_names:
                self.cameras[camera] = CameraIO(node, camera, self)
            self.pub_diagnostics = create_publisher(node, DiagnosticArray, '/diagnostics', 10)
        except BaseException:
            self._destroy_publishers()
            raise

    def _stream_name(self, io: CameraIO) -> str:
        return f'{self.name}: {io.name}'

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self.diag_timer is not None

    def start(self) -> None:
        """Open a runtime stream per camera and subscribe the inputs."""
        try:
            for io in self.cameras.values():
                name = self._stream_name(io)
                if self.publish_thread:
                    io.publisher = PublishThread(io.publish, f'evs-publish-{io.name}')
                io.start(self.runtime.add_stream(name, io.on_output, self.config))
        except BaseException:  # a shared runtime must not keep streams of a refused node
            self._stop_streams()
            raise
        with self._diag_lock:
            self.diag_timer = self.node.create_timer(DIAGNOSTICS_PERIOD_S,
                                                     self.publish_diagnostics)

    def stop(self) -> None:
        """Stop the streams (nothing is published after this returns) and unsubscribe."""
        with self._diag_lock:  # a multi-threaded executor may be in publish_diagnostics
            if self.diag_timer is not None:
                self.node.destroy_timer(self.diag_timer)
                self.diag_timer = None
        self._stop_streams()

    def close(self) -> None:
        """:meth:`stop`, then destroy the publishers."""
        self.stop()
        self._destroy_publishers()

    def set_config(self, config) -> None:
        """Run-time changes: operating point, flow and IAM settings, overlay weight, toggles."""
        for io in self.cameras.values():
            if io.stream is not None:
                io.stream.set_config(config)
            io.health.set_config(config.publish)
        self.visualizer.alpha = config.publish.overlay_alpha
        self.config = config

    def _stop_streams(self) -> None:
        for io in self.cameras.values():
            running = io.stream is not None
            if running:
                self.runtime.remove_stream(self._stream_name(io))
            io.stop()
            if running:
                self.node.get_logger().info(
                    f'[{io.name}] stopped after {io.outputs} outputs ({io.rejected} inputs '
                    f'refused, {io.dropped} dropped); nothing is published any more')

    def _destroy_publishers(self) -> None:
        for io in self.cameras.values():
            io.destroy()
        publisher = getattr(self, 'pub_diagnostics', None)
        if publisher is not None:
            destroy_publisher(self.node, publisher)
            self.pub_diagnostics = None

    def publish_diagnostics(self) -> None:
        with self._diag_lock:
            if self.diag_timer is None or not self.config.publish.diagnostics:
                return
            array = DiagnosticArray()
            array.header.stamp = self.node.get_clock().now().to_msg()
            array.status = [self.camera_diagnostics(io) for io in self.cameras.values()]
            self.pub_diagnostics.publish(array)

    def camera_diagnostics(self, io: CameraIO) -> DiagnosticStatus:
        """Return one camera's DiagnosticStatus.

        Level and reasons (:mod:`evs_ros.ros.health`), rates, counts per cause, published counts
        and the stream's stage percentiles.
        """
        stats = io.stream.stats() if io.stream is not None else {}
        level, reasons = io.health.assess(io.counters(stats))
        input_hz, output_hz = io.health.rates_hz()
        values = {'input_hz': f'{input_hz:.1f}', 'output_hz': f'{output_hz:.1f}',
                  'operating_point': self.config.operating_point.name,
                  'image_topic': io.subscriptions[0].topic_name if io.subscriptions else '',
                  'frames_received': str(io.accepted + io.rejected),
                  'rejected_bad_messages': str(io.rejections.total),
                  'rejected_stamps': str(io.rejected_stamps)}
        values.update({f'rejected_{cause}': str(count)
                       for cause, count in sorted(io.rejections.counts.items())})
        values.update({f'published_{topic}': str(io.published[topic])
                       for topic in OUTPUT_TOPICS + ('camera_info',)})
        values.update({key: _fmt(value) for key, value in stats.items()})
        return DiagnosticStatus(level=bytes([level]), name=self._stream_name(io),
                                message='; '.join(reasons) or 'ok', hardware_id=io.name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])


def _fmt(value) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)
