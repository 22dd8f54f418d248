"""evs_node: the EVS pipeline as a ROS 2 node (design §5).

A thin adapter: it declares parameters, builds the runtime (one shared inference worker, one
flow-worker stream per camera), converts messages and publishes. Callbacks only convert and
enqueue; the runtime's threads do the work and call back with results, which are published with
the input's header. Topics (relative, so the namespace decides where they live), per camera:

- sub ``image`` (sensor_msgs/Image), optionally ``image/compressed``
- pub ``labels`` (mono8 trainIds, 255 = ignore), ``labels_color`` (rgb8), ``overlay`` (rgb8),
  ``inconsistency_mask`` (mono8 0..255), ``status`` (evs_ros/FrameStatus)
- pub ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz summary of every camera)

Outputs are only computed for topics somebody subscribes to.
"""

import math
import sys
import time
from typing import Dict, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from evs_ros.config import EvsConfig
from evs_ros.msg import FrameStatus
from evs_ros.ros import conversions, params

DIAGNOSTICS_PERIOD_S = 1.0


def make_qos(config: EvsConfig) -> QoSProfile:
    """Sensor-data QoS (best effort, keep last) by default; reliable on request."""
    if config.publish.qos_reliability == 'best_effort':
        qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k)
                            for k in ('history', 'reliability', 'durability')},
                         depth=config.publish.qos_depth)
        return qos
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.publish.qos_depth,
                      reliability=ReliabilityPolicy.RELIABLE)


class CameraIO:
    """Subscriptions, publishers and counters of one camera (namespace ``prefix``)."""

    def __init__(self, node: 'EvsNode', name: str, stream, qos: QoSProfile):
        prefix = f'{name}/' if name else ''
        self.name = name or 'camera'
        self.node = node
        self.stream = stream
        self.rejected = 0
        self.outputs = 0
        self.outputs_at_last_diag = 0
        self.pub_labels = node.create_publisher(Image, prefix + 'labels', qos)
        self.pub_color = node.create_publisher(Image, prefix + 'labels_color', qos)
        self.pub_overlay = node.create_publisher(Image, prefix + 'overlay', qos)
        self.pub_mask = node.create_publisher(Image, prefix + 'inconsistency_mask', qos)
        self.pub_status = node.create_publisher(FrameStatus, prefix + 'status', qos)
        self.sub_image = node.create_subscription(Image, prefix + 'image', self.on_image, qos)
        self.sub_compressed = None
        if node.config.publish.subscribe_compressed:
            self.sub_compressed = node.create_subscription(
                CompressedImage, prefix + 'image/compressed', self.on_compressed, qos)

    def on_image(self, msg: Image) -> None:
        self._submit(msg, conversions.image_msg_to_bgr)

    def on_compressed(self, msg: CompressedImage) -> None:
        self._submit(msg, conversions.compressed_msg_to_bgr)

    def _submit(self, msg, convert) -> None:
        try:
            image_bgr = convert(msg)
        except ValueError as error:
            self.rejected += 1
            self.node.get_logger().error(
                f'[{self.name}] dropped an input image: {error}', throttle_duration_sec=2.0)
            return
        meta = (msg.header, time.monotonic(), image_bgr)
        self.stream.submit(image_bgr, conversions.stamp_to_ns(msg.header.stamp), meta)

    def wanted(self, publisher) -> bool:
        return publisher.get_subscription_count() > 0

    def publish(self, result) -> None:
        """Publish one FrameResult (runs on the stream's flow-worker thread)."""
        header, received_s, image_bgr = result.meta
        publish = self.node.config.publish
        colors_rgb = None
        if publish.labels and self.wanted(self.pub_labels):
            self.pub_labels.publish(conversions.labels_to_msg(result.labels, header))
        if publish.labels_color and self.wanted(self.pub_color):
            colors_rgb = self.node.colorize(result.labels)
            self.pub_color.publish(conversions.rgb_to_msg(colors_rgb, header))
        if publish.overlay and self.wanted(self.pub_overlay):
            if colors_rgb is None:
                colors_rgb = self.node.colorize(result.labels)
            overlay_rgb = self.node.overlay(image_bgr, colors_rgb)
            self.pub_overlay.publish(conversions.rgb_to_msg(overlay_rgb, header))
        if publish.inconsistency_mask and self.wanted(self.pub_mask):
            self.pub_mask.publish(conversions.mono_to_msg(result.mask, header))
        if publish.status:
            latency_ms = (time.monotonic() - received_s) * 1000.0
            self.pub_status.publish(self.status_msg(result.info, header, latency_ms))
        self.outputs += 1

    def status_msg(self, info, header, latency_ms: float) -> FrameStatus:
        stats = self.stream.stats()
        msg = FrameStatus(header=header, camera=self.name,
                          operating_point=info.operating_point, keyframe=bool(info.keyframe),
                          frames_since_keyframe=int(info.frames_since_keyframe),
                          refined=bool(info.refined),
                          inconsistent_fraction=float(info.inconsistent_fraction))
        for stage in ('flow_ms', 'warp_ms', 'iam_ms', 'inference_ms', 'refine_ms', 'total_ms'):
            setattr(msg, stage, float(getattr(info, stage)))
        msg.latency_ms = float(latency_ms)
        msg.frames_received = int(stats.get('frames_in', 0)) + self.rejected
        msg.frames_dropped = int(stats.get('dropped', 0))
        msg.frames_rejected = int(stats.get('rejected', 0)) + self.rejected
        return msg


class EvsNode(Node):
    """The ROS node: parameters, one runtime stream per camera, publishing."""

    def __init__(self, node_name: str = 'evs_node', **kwargs):
        super().__init__(node_name, **kwargs)
        self.config = params.declare_parameters(self)
        from evs_ros.pipeline.visualize import Visualizer
        self.visualizer = Visualizer.from_config(self.config)
        self.runtime = self._build_runtime()
        qos = make_qos(self.config)
        self.cameras: Dict[str, CameraIO] = {}
        for name in params.camera_names(self):
            stream = self.runtime.add_stream(
                name or 'camera', lambda result, n=name: self.cameras[n].publish(result))
            self.cameras[name] = CameraIO(self, name, stream, qos)
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
        refiner = load_refiner(model_cfg.refiner, device=model_cfg.device, fp16=model_cfg.fp16,
                               num_classes=model.num_classes) if model_cfg.refiner else None
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
        if config.operating_point != self.config.operating_point:
            for camera in self.cameras.values():
                camera.stream.set_operating_point(config.operating_point)
            self.get_logger().info(f'operating point -> {config.operating_point}')
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
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self.cameras.values():
            array.status.append(self._camera_diagnostics(camera))
        self.pub_diagnostics.publish(array)

    def _camera_diagnostics(self, camera: CameraIO) -> DiagnosticStatus:
        stats = camera.stream.stats()
        hz = (camera.outputs - camera.outputs_at_last_diag) / DIAGNOSTICS_PERIOD_S
        camera.outputs_at_last_diag = camera.outputs
        errors = int(stats.get('errors', 0))
        level = DiagnosticStatus.OK if errors == 0 else DiagnosticStatus.WARN
        message = 'ok' if errors == 0 else f'{errors} model errors (see log)'
        values = {'output_hz': f'{hz:.1f}', 'operating_point': self.config.operating_point.name,
                  'rejected_inputs': str(camera.rejected)}
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


def _fmt(value) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)


def main(args: Optional[list] = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = EvsNode()
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError) as error:
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
