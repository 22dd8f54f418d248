"""What the EVS node and the managed (lifecycle) node share: one :class:`NodeCore` each holds.

A core lives on one rclpy node (plain or lifecycle) and walks it through the lifecycle's steps;
:class:`~evs_ros.ros.node.EvsNode` takes every step at construction, the lifecycle node one per
transition:

- construction: parameters declared and checked (:mod:`evs_ros.ros.params`), run-time changes
  validated and applied (:class:`ParameterUpdates`), pipeline logs routed to the node's logger
  (:mod:`evs_ros.ros.logs`).
- :meth:`NodeCore.configure`: the network from the :class:`~evs_ros.pipeline.shared.RuntimePool`
  (one per model config in a process: composed nodes share it), its class names, the publishers.
- :meth:`NodeCore.activate`: one runtime stream per camera, the subscriptions, diagnostics.
- :meth:`NodeCore.deactivate`: streams and subscriptions closed; nothing is published.
- :meth:`NodeCore.cleanup`: publishers destroyed, network released.
- :meth:`NodeCore.close`: all of the above that applies, and the log route removed.
"""

from typing import Dict

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter

from evs_ros.pipeline.network_input import describe_input
from evs_ros.ros import logs, params
from evs_ros.ros.cameras import CameraSet


class ParameterUpdates:
    """Validate-and-apply of run-time parameter changes for ``core`` (its ``config``).

    Preset names are canonicalised and a new preset's D/S/W/R are written back (from a timer:
    parameters cannot be set inside the set-parameters callback). Where rclpy has pre-set
    callbacks (Iron and later) an integer given for a float parameter is taken as the float.
    """

    def __init__(self, node, core: 'NodeCore'):
        self.node, self.core = node, core
        self.pending_echo: Dict[str, object] = {}
        self.echo_timer = None
        self.echoing = False
        params.accept_integers_for_floats(node)
        node.add_on_set_parameters_callback(self.on_set_parameters)

    def on_set_parameters(self, changes):
        # Declarations (class_names when a lifecycle node configures) are not changes.
        changes = [p for p in changes if self.node.has_parameter(p.name)]
        if self.echoing or not changes:  # our own write-back of what already runs: nothing to do
            return params.result()
        try:
            config, echo = params.apply_changes(self.core.config, changes)
        except ValueError as error:
            self.node.get_logger().warning(f'parameter change rejected: {error}')
            return params.result(error)
        self.core.apply_config(config)
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


class NodeCore:
    """Parameters, network, cameras and run-time changes of one EVS node (see module doc).

    Args:
        node: the rclpy node (plain or lifecycle) the core lives on.
        runtimes: where the network comes from; nodes of one process should share one pool
            (a private pool is made when None).

    Raises:
        ValueError: a parameter value is refused (one line).
    """

    def __init__(self, node, runtimes=None):
        from evs_ros.pipeline.shared import RuntimePool
        self.node = node
        self.runtime = self.visualizer = self.cameras = None
        self.config = params.declare_parameters(node)
        self.canonical_preset()
        self.runtimes = runtimes if runtimes is not None else RuntimePool()
        self.updates = ParameterUpdates(node, self)
        logs.attach(node)

    @property
    def configured(self) -> bool:
        return self.runtime is not None

    def configure(self) -> None:
        """Load (or share) the network and create the publishers."""
        camera_names = params.camera_names(self.node)  # checked before the network loads
        with logs.loading(self.node):
            runtime = self.runtimes.acquire(self.config)
        try:
            self.visualizer = self.visualizer_for(runtime)
            self.cameras = CameraSet(self.node, self.config, runtime, self.visualizer,
                                     camera_names)
        except BaseException:
            self.visualizer = None
            self.runtimes.release(runtime)
            raise
        self.runtime = runtime

    def activate(self) -> None:
        """Start the cameras' streams and subscriptions; logs the ready line."""
        self.cameras.start()
        self.node.get_logger().info(self.ready_text())

    def deactivate(self) -> bool:
        """Stop the streams and subscriptions (nothing is published afterwards).

        Returns False when they were not running.
        """
        if self.cameras is None or not self.cameras.running:
            return False
        self.cameras.stop()
        return True

    def cleanup(self) -> bool:
        """Destroy the publishers and give the network back; False when not configured."""
        if self.runtime is None:
            return False
        self.deactivate()
        self.cameras.close()
        runtime, self.runtime, self.visualizer, self.cameras = self.runtime, None, None, None
        self.runtimes.release(runtime)
        return True

    def close(self) -> None:
        """Release everything; pipeline logs no longer reach this node.

        Call it before destroying the node.
        """
        self.cleanup()
        logs.detach(self.node)

    def apply_config(self, config) -> None:
        """Adopt a validated run-time ``config``: log what changed, hand it to the cameras."""
        logger = self.node.get_logger()
        if config.operating_point != self.config.operating_point:
            logger.info(f'operating point -> {config.operating_point}')
        if (config.flow, config.iam) != (self.config.flow, self.config.iam):
            logger.info(f'flow -> {config.flow}, iam -> {config.iam}')
        if config.publish != self.config.publish:
            logger.debug(f'publish -> {config.publish}')
        if self.cameras is not None:
            self.cameras.set_config(config)
        self.config = config

    def canonical_preset(self) -> None:
        """Write ``operating_point.preset`` back in canonical form (``evs3`` -> ``EVS03``)."""
        value = self.node.get_parameter(params.PRESET).value
        name = self.config.operating_point.preset_name
        if value != name:
            self.node.set_parameters([Parameter(params.PRESET, value=name)])

    def visualizer_for(self, runtime):
        """Return the :class:`~evs_ros.data.labels.Visualizer` of ``runtime``'s network.

        Declares the read-only ``class_names`` parameter the first time (a lifecycle node
        configures again).
        """
        from evs_ros.data.classes import visualizer_for_model
        visualizer = visualizer_for_model(self.config, runtime.model)
        if not self.node.has_parameter(params.CLASS_NAMES):
            self.node.declare_parameter(
                params.CLASS_NAMES, [str(name) for name in visualizer.class_names],
                ParameterDescriptor(name=params.CLASS_NAMES, read_only=True,
                                    description='class of each label value (index = value in '
                                    'labels); also on label_info with vision_msgs'))
        return visualizer

    def ready_text(self) -> str:
        """Return the one log line saying that the node serves its cameras, and how."""
        op = self.config.operating_point
        no_refiner = ' (no Refiner: acts as off)' if op.refine and self.runtime.refiner is None \
            else ''
        return (f'EVS ready: cameras={list(self.cameras.cameras)} operating point {op.name} '
                f'(D={op.downscale} S={op.keyframe_interval} W={op.warp} R={op.refine}'
                f'{no_refiner}{" adaptive" if op.adaptive else ""}) '
                f'backend={self.config.model.backend}, {describe_input(self.runtime.model)}')
