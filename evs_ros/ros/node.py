"""evs_node: the EVS pipeline as a ROS 2 node (design §5).

A thin adapter: it declares parameters, builds the runtime (one shared inference worker, one
flow-worker stream per camera), converts messages and publishes. Callbacks only convert and
enqueue; the runtime's threads do the work and call back with results, which are published with
the input's header. Topics (relative, so the namespace decides where they live), per camera:

- sub ``image`` (sensor_msgs/Image), optionally ``image/compressed``
- pub ``labels`` (mono8 trainIds, 255 = ignore), ``labels_color`` (rgb8), ``overlay`` (rgb8),
  ``inconsistency_mask`` (mono8 0..255), ``status`` (evs_ros/FrameStatus)
- pub ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz summary of every camera)

Outputs are only computed for topics somebody subscribes to: colouring and overlays for nobody
are skipped, and ``/diagnostics`` reports per camera how many messages of each topic were
published (``published_<topic>``), so the skipped work can be seen. Its other values: output_hz,
operating_point, rejected_bad_messages (could not be converted), the stream's counters
(frames_in, frames_out, dropped, rejected = stamp not increasing, errors, keyframes, max_queue)
and stage-time percentiles (``<stage>_p50``/``_p99`` in ms). Bad input messages (unsupported
encoding, empty, truncated) and out-of-order stamps are rejected with a logged reason and counted
(``frames_rejected`` in ``status``); the node never stops for them. Log records of the pipeline
(Python logger ``evs_ros``) are forwarded to the node's ROS logger.
"""

import collections
import logging
import math
import sys
import time
from typing import Dict, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
try:  # Jazzy and newer raise it when the context is shut down from outside (ros2 launch)
    from rclpy.executors import ExternalShutdownException
except ImportError:  # Humble
    class ExternalShutdownException(Exception):
        """Placeholder: this rclpy never raises it."""
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from evs_ros.msg import FrameStatus
from evs_ros.ros import conversions, params

DIAGNOSTICS_PERIOD_S = 1.0
REPEAT_LOG_PERIOD_S = 5.0
OUTPUT_TOPICS = ('labels', 'labels_color', 'overlay', 'inconsistency_mask', 'status')
MAX_DISTINCT_ERRORS = 64


def make_qos(reliability: str, depth: int) -> QoSProfile:
    """Sensor-data QoS (best effort, keep last) for 'best_effort'; reliable keep-last else."""
    if reliability == 'best_effort':
        return QoSProfile(**{k: getattr(qos_profile_sensor_data, k)
                             for k in ('history', 'reliability', 'durability')}, depth=depth)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE)


class RclpyLogHandler(logging.Handler):
    """Forwards Python ``logging`` records (the pipeline's ``evs_ros`` logger) to a ROS logger."""

    def __init__(self, ros_logger):
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            else:
                self.ros_logger.info(text)
        except Exception:  # noqa: B902 - logging must never raise into the pipeline
            self.handleError(record)


class CameraIO:
    """Subscriptions, publishers and counters of one camera (namespace ``prefix``).

    Attributes:
        rejected: input messages that could not be converted (bad encoding, size, data).
        accepted, rejected_stamps: frames the stream took, and refused because their stamp was
            not after the last one.
        dropped: frames the stream's latest-frame buffer dropped (reported with the outputs).
        outputs: frames whose outputs were published.
        published: topic -> messages published on it (``labels``, ``overlay``, ...).
    """

    def __init__(self, node: 'EvsNode', name: str, stream, qos_in: QoSProfile,
                 qos_out: QoSProfile):
        prefix = f'{name}/' if name else ''
        self.name = name or 'camera'
        self.node = node
        self.stream = stream
        self.rejected = 0
        self.accepted = 0
        self.rejected_stamps = 0
        self.dropped = 0
        self.outputs = 0
        self.outputs_at_last_diag = 0
        self.published = collections.Counter()
        self.error_texts = set()
        self.pub_labels = node.create_publisher(Image, prefix + 'labels', qos_out)
        self.pub_color = node.create_publisher(Image, prefix + 'labels_color', qos_out)
        self.pub_overlay = node.create_publisher(Image, prefix + 'overlay', qos_out)
        self.pub_mask = node.create_publisher(Image, prefix + 'inconsistency_mask', qos_out)
        self.pub_status = node.create_publisher(FrameStatus, prefix + 'status', qos_out)
        self.sub_image = node.create_subscription(Image, prefix + 'image', self.on_image,
                                                  qos_in)
        self.sub_compressed = None
        if node.config.publish.subscribe_compressed:
            self.sub_compressed = node.create_subscription(
                CompressedImage, prefix + 'image/compressed', self.on_compressed, qos_in)

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

    def wanted(self, publisher) -> bool:
        return publisher.get_subscription_count() > 0

    def publish(self, result) -> None:
        """Publish one FrameResult (runs on the stream's flow-worker thread).

        Colours and the overlay are only computed for topics that have subscribers.
        """
        header, received_s, image_bgr = result.meta
        publish = self.node.config.publish
        colors_rgb = None
        if publish.labels and self.wanted(self.pub_labels):
            self._send('labels', self.pub_labels,
                       conversions.labels_to_msg(result.labels, header))
        if publish.labels_color and self.wanted(self.pub_color):
            colors_rgb = self.node.colorize(result.labels)
            self._send('labels_color', self.pub_color, conversions.rgb_to_msg(colors_rgb, header))
        if publish.overlay and self.wanted(self.pub_overlay):
            if colors_rgb is None:
                colors_rgb = self.node.colorize(result.labels)
            overlay_rgb = self.node.overlay(image_bgr, colors_rgb)
            self._send('overlay', self.pub_overlay, conversions.rgb_to_msg(overlay_rgb, header))
        if publish.inconsistency_mask and self.wanted(self.pub_mask):
            self._send('inconsistency_mask', self.pub_mask,
                       conversions.mono_to_msg(result.mask, header))
        self.dropped += int(result.info.dropped_frames)
        if publish.status and self.wanted(self.pub_status):
            latency_ms = (time.monotonic() - received_s) * 1000.0
            self._send('status', self.pub_status, self.status_msg(result.info, header, latency_ms))
        self.outputs += 1

    def _send(self, topic: str, publisher, msg) -> None:
        publisher.publish(msg)
        self.published[topic] += 1

    def status_msg(self, info, header, latency_ms: float) -> FrameStatus:
        msg = FrameStatus(header=header, camera=self.name,
                          operating_point=info.operating_point, keyframe=bool(info.keyframe),
                          frames_since_keyframe=int(info.frames_since_keyframe),
                          refined=bool(info.refined),
                          inconsistent_fraction=float(info.inconsistent_fraction))
        for stage in ('flow_ms', 'warp_ms', 'iam_ms', 'inference_ms', 'refine_ms', 'total_ms'):
            setattr(msg, stage, float(getattr(info, stage)))
        msg.latency_ms = float(latency_ms)
        rejected = self.rejected + self.rejected_stamps
        msg.frames_received = self.accepted + rejected
        msg.frames_dropped = self.dropped
        msg.frames_rejected = rejected
        return msg


class EvsNode(Node):
    """The ROS node: parameters, one runtime stream per camera, publishing."""

    def __init__(self, node_name: str = 'evs_node', **kwargs):
        super().__init__(node_name, **kwargs)
        self.log_handler = RclpyLogHandler(self.get_logger())
        pipeline_logger = logging.getLogger('evs_ros')
        pipeline_logger.addHandler(self.log_handler)
        pipeline_logger.setLevel(logging.INFO)
        pipeline_logger.propagate = False
        self.config = params.declare_parameters(self)
        from evs_ros.pipeline.visualize import Visualizer
        self.visualizer = Visualizer.from_config(self.config)
        self.runtime = self._build_runtime()
        publish = self.config.publish
        qos_out = make_qos(publish.qos_reliability, publish.qos_depth)
        qos_in = make_qos(publish.input_qos_reliability, publish.qos_depth)
        self.cameras: Dict[str, CameraIO] = {}
        for name in params.camera_names(self):
            stream = self.runtime.add_stream(
                name or 'camera', lambda result, n=name: self.cameras[n].publish(result))
            self.cameras[name] = CameraIO(self, name, stream, qos_in, qos_out)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.pending_echo: Dict[str, object] = {}
        self.echo_timer = None
        op = self.config.operating_point
        self.get_logger().info(
            f'EVS ready: cameras={list(self.cameras)} operating point {op.name} '
            f'(D={op.downscale} S={op.keyframe_interval} W={op.warp} R={op.refine}'
            f'{" adaptive" if op.adaptive else ""}) backend={self.config.model.backend}')

    def _build_runtime(self):
        from evs_ros.models.backends import load_backend, load_refiner
        from evs_ros.pipeline.runtime import EvsRuntime
        model_cfg = self.config.model
        model = load_backend(model_cfg.backend, device=model_cfg.device, fp16=model_cfg.fp16)
        refiner = load_refiner(model_cfg.refiner, device=model_cfg.device, fp16=model_cfg.fp16)
        if refiner is not None and refiner.num_classes != model.num_classes:
            raise ValueError(f'model.refiner predicts {refiner.num_classes} classes but '
                             f'model.backend has {model.num_classes}; use a matching Refiner')
        return EvsRuntime(self.config, model, refiner)

    def colorize(self, labels):
        return self.visualizer.colorize(labels)

    def overlay(self, image_bgr, colors_rgb):
        return self.visualizer.overlay(image_bgr, colors_rgb)

    def on_set_parameters(self, changes):
        try:
            config, echo = params.apply_changes(self.config, changes)
        except ValueError as error:
            self.get_logger().warning(f'parameter change rejected: {error}')
            return params.result(error)
        if (config.flow, config.iam) != (self.config.flow, self.config.iam):
            self.runtime.set_config(config)
            self.get_logger().info(f'flow -> {config.flow}, iam -> {config.iam}')
        elif config.operating_point != self.config.operating_point:
            self.runtime.set_operating_point(config.operating_point)
        if config.operating_point != self.config.operating_point:
            self.get_logger().info(f'operating point -> {config.operating_point}')
        self.visualizer.alpha = config.publish.overlay_alpha
        self.config = config
        if echo:  # show the preset's fields in `ros2 param get` (cannot set inside this callback)
            self.pending_echo.update(echo)
            if self.echo_timer is None:
                self.echo_timer = self.create_timer(0.0, self._echo_preset_fields)
        return params.result()

    def _echo_preset_fields(self):
        self.destroy_timer(self.echo_timer)
        self.echo_timer = None
        echo, self.pending_echo = self.pending_echo, {}
        current = [p for p in self.get_parameters(list(echo)) if p.value != echo[p.name]]
        if current:
            self.set_parameters([rclpy.parameter.Parameter(p.name, value=echo[p.name])
                                 for p in current])

    def publish_diagnostics(self):
        if not self.config.publish.diagnostics:
            return
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self.cameras.values():
            array.status.append(self._camera_diagnostics(camera))
        self.pub_diagnostics.publish(array)

    def _camera_diagnostics(self, camera: CameraIO) -> DiagnosticStatus:
        stats = camera.stream.stats()
        hz = (camera.outputs - camera.outputs_at_last_diag) / DIAGNOSTICS_PERIOD_S
        camera.outputs_at_last_diag = camera.outputs
        problems = [f'{count} {what}' for count, what in (
            (int(stats.get('errors', 0)), 'model errors'),
            (camera.rejected + int(stats.get('rejected', 0)), 'inputs rejected')) if count]
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        message = ', '.join(problems) + ' (see log)' if problems else 'ok'
        values = {'output_hz': f'{hz:.1f}', 'operating_point': self.config.operating_point.name,
                  'rejected_bad_messages': str(camera.rejected)}
        for topic in OUTPUT_TOPICS:
            values[f'published_{topic}'] = str(camera.published[topic])
        for key, value in stats.items():
            if isinstance(value, dict):
                for sub_key, sub_value in value.items():
                    values[f'{key}_{sub_key}'] = _fmt(sub_value)
            else:
                values[key] = _fmt(value)
        return DiagnosticStatus(level=level, name=f'{self.get_name()}: {camera.name}',
                                message=message, hardware_id=camera.name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def close(self):
        self.runtime.close()
        logging.getLogger('evs_ros').removeHandler(self.log_handler)


def _fmt(value) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)


def main(args: Optional[list] = None) -> int:
    from evs_ros.flow import tune_allocator
    tune_allocator()  # big per-frame arrays: avoid mmap/munmap page faults on every frame
    rclpy.init(args=args)
    node = None
    try:
        node = EvsNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f'evs_node: {error}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
