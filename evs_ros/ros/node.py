"""evs_node: the EVS pipeline as a ROS 2 node (design §5).

A thin adapter. :class:`EvsNode` declares the parameters (:mod:`evs_ros.ros.params`), gets a
runtime for its model settings from a :class:`~evs_ros.pipeline.shared.RuntimePool` (one network
per model config in a process: composed nodes share it), and hands everything to a
:class:`~evs_ros.ros.cameras.CameraSet`, which converts messages and publishes. Parameters of the
operating point, flow, IAM and publishing change at run time; model, runtime and QoS settings are
read at start-up. ``main()`` builds the node and spins it until SIGINT/SIGTERM
(:mod:`evs_ros.ros.process`): exit code 0, nothing published after shutdown, and one line with
exit code 2 when a setting or the model is refused.

The node is composable: ``evs_container`` (:mod:`evs_ros.ros.container`) loads it as
``evs_ros::EvsNode``; ``evs_lifecycle_node`` (:mod:`evs_ros.ros.lifecycle`) is the managed variant.
"""

import logging
import sys
from typing import Dict, Optional

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from evs_ros.pipeline.network_input import describe_input
from evs_ros.ros import params
from evs_ros.ros.cameras import CameraSet

_FORWARDED = []


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


def forward_pipeline_logs() -> None:
    """Send the pipeline's Python logs to the ROS logger ``evs_ros`` (once per process)."""
    if _FORWARDED:
        return
    logger = logging.getLogger('evs_ros')
    logger.addHandler(RclpyLogHandler(rclpy.logging.get_logger('evs_ros')))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _FORWARDED.append(True)


def declare_class_names(node, class_names) -> None:
    """Declare the network's class names as the read-only ``class_names`` parameter (id order)."""
    node.declare_parameter(params.CLASS_NAMES, [str(name) for name in class_names],
                           ParameterDescriptor(
                               name=params.CLASS_NAMES, read_only=True,
                               description='class of each label value (index = value in '
                               'labels); also on label_info with vision_msgs'))


class ParameterUpdates:
    """Validate-and-apply of run-time parameter changes for a node holding ``config``.

    Preset names are canonicalised and a new preset's D/S/W/R are written back (from a timer:
    parameters cannot be set inside the set-parameters callback).
    """

    def __init__(self, node, apply):
        self.node, self.apply = node, apply
        self.pending_echo: Dict[str, object] = {}
        self.echo_timer = None
        self.echoing = False
        node.add_on_set_parameters_callback(self.on_set_parameters)

    def on_set_parameters(self, changes):
        # Declarations (class_names when a lifecycle node configures) are not changes.
        changes = [p for p in changes if self.node.has_parameter(p.name)]
        if self.echoing or not changes:  # our own write-back of what already runs: nothing to do
            return params.result()
        try:
            config, echo = params.apply_changes(self.node.config, changes)
        except ValueError as error:
            self.node.get_logger().warning(f'parameter change rejected: {error}')
            return params.result(error)
        self.apply(config)
        if echo:
            self.pending_echo.update(echo)
            if self.echo_timer is None:
                self.echo_timer = self.node.create_timer(0.0, self._echo)
        return params.result()

    def _echo(self) -> None:
        self.node.destroy_timer(self.echo_timer)
        self.echo_timer = None
        echo, self.pending_echo = self.pending_echo, {}
        current = [p for p in self.node.get_parameters(list(echo)) if p.value != echo[p.name]]
        if current:
            self.echoing = True
            try:
                self.node.set_parameters([Parameter(p.name, value=echo[p.name])
                                          for p in current])
            finally:
                self.echoing = False


def canonical_preset(node) -> None:
    """Write ``operating_point.preset`` back in canonical form (``evs3`` -> ``EVS03``)."""
    value = node.get_parameter(params.PRESET).value
    name = node.config.operating_point.preset_name
    if value != name:
        node.set_parameters([Parameter(params.PRESET, value=name)])


def visualizer_for(node, config, runtime):
    """Return the :class:`~evs_ros.data.labels.Visualizer` of ``runtime``'s network.

    Declares the read-only ``class_names`` parameter the first time (a lifecycle node configures
    again).
    """
    from evs_ros.data.classes import visualizer_for_model
    visualizer = visualizer_for_model(config, runtime.model)
    if not node.has_parameter(params.CLASS_NAMES):
        declare_class_names(node, visualizer.class_names)
    return visualizer


def start_cameras(node, config, runtime, visualizer) -> CameraSet:
    """Subscribe and publish every camera of ``node`` (parameter ``cameras``) on ``runtime``."""
    return CameraSet(node, config, runtime, visualizer, params.camera_names(node))


def ready_text(config, cameras: CameraSet) -> str:
    """Return the one log line saying that a node serves its cameras, and how."""
    op = config.operating_point
    no_refiner = ' (no Refiner: acts as off)' if op.refine and cameras.runtime.refiner is None \
        else ''
    return (f'EVS ready: cameras={list(cameras.cameras)} operating point {op.name} '
            f'(D={op.downscale} S={op.keyframe_interval} W={op.warp} R={op.refine}{no_refiner}'
            f'{" adaptive" if op.adaptive else ""}) backend={config.model.backend}, '
            f'{describe_input(cameras.runtime.model)}')


def apply_config(node, config) -> None:
    """Adopt a validated run-time ``config`` on ``node``: log what changed, apply it.

    ``node.config`` and ``node.cameras`` (which may be None while a lifecycle node is inactive).
    """
    if config.operating_point != node.config.operating_point:
        node.get_logger().info(f'operating point -> {config.operating_point}')
    if (config.flow, config.iam) != (node.config.flow, node.config.iam):
        node.get_logger().info(f'flow -> {config.flow}, iam -> {config.iam}')
    if node.cameras is not None:
        node.cameras.set_config(config)
    node.config = config


class EvsNode(Node):
    """The node: parameters, a shared runtime, the cameras, run-time changes.

    Args:
        node_name: the node's name (remapping ``__node`` still applies).
        runtimes: where the runtime comes from; nodes of one process should share one pool
            (a private pool is made when None).
        **node_kwargs: rclpy ``Node`` options (namespace, cli_args, parameter_overrides, ...).

    Raises:
        ValueError, FileNotFoundError, ImportError: a refused parameter or model (one line);
            the node is destroyed then (nothing is left behind in a container).
    """

    def __init__(self, node_name: str = 'evs_node', *, runtimes=None, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.cameras = None
        try:
            self._start(runtimes)
        except BaseException:
            self.close()
            self.destroy_node()
            raise

    def _start(self, runtimes) -> None:
        from evs_ros.pipeline.shared import RuntimePool
        forward_pipeline_logs()
        self.config = params.declare_parameters(self)
        self.runtimes = runtimes if runtimes is not None else RuntimePool()
        self.runtime = self.runtimes.acquire(self.config)
        try:
            visualizer = visualizer_for(self, self.config, self.runtime)
            self.cameras = start_cameras(self, self.config, self.runtime, visualizer)
        except BaseException:
            self.runtimes.release(self.runtime)
            raise
        canonical_preset(self)
        self.updates = ParameterUpdates(self, self.apply_config)
        self.get_logger().info(ready_text(self.config, self.cameras))

    def apply_config(self, config) -> None:
        """Adopt a validated run-time config (from :class:`ParameterUpdates`)."""
        apply_config(self, config)

    def close(self) -> None:
        """Stop the cameras (nothing is published afterwards) and give the runtime back."""
        if self.cameras is not None:
            self.cameras.close()
            self.cameras = None
            self.runtimes.release(self.runtime)


def main(args: Optional[list] = None) -> int:
    """``ros2 run evs_ros evs_node [--ros-args ...]``."""
    from evs_ros.pipeline.allocator import tune_allocator
    from evs_ros.ros.process import run_node
    tune_allocator()  # big per-frame arrays: avoid mmap/munmap page faults on every frame
    return run_node('evs_node', EvsNode, args)


if __name__ == '__main__':
    sys.exit(main())
