"""evs_lifecycle_node: the EVS node as a managed (lifecycle) node on ``rclpy.lifecycle``.

Driven through the standard services (``~/change_state``, ``~/get_state``,
``~/get_available_states``, ``~/get_available_transitions``), e.g. by ``ros2 lifecycle set`` or a
Nav2-style lifecycle manager:

- unconfigured (start): parameters declared and checked; no network, no topics.
- configure -> inactive: the parameters are read, the network is loaded and warmed up (from a
  :class:`~evs_ros.pipeline.shared.RuntimePool`, shared with the other nodes of a container).
- activate -> active: the cameras subscribe ``image`` and publish (a
  :class:`~evs_ros.ros.cameras.CameraSet`); nothing is published before.
- deactivate -> inactive: the streams are stopped and the topics destroyed; nothing is published.
- cleanup -> unconfigured: the network is released (freed when its last user goes).
- shutdown, from any state -> finalized: everything is released; the standalone process exits 0.

A transition that cannot be made (a bad backend, a missing weights file) logs one line with the
reason and returns FAILURE: the node stays in the state it was in. Parameters that change at run
time are applied in every state; model and runtime settings are read at start-up, as for
``evs_node``. ``evs_container`` loads this node as ``evs_ros::EvsLifecycleNode``.
"""

import sys
import time
import traceback
from typing import Callable, Optional

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from evs_ros.errors import one_line
from evs_ros.ros import node as base
from evs_ros.ros import params

FINISH_GRACE_S = 0.5
"""After the shutdown transition the standalone process lives this long, so that the answer to
``change_state`` reaches its caller before the process ends."""


class EvsLifecycleNode(LifecycleNode):
    """The managed EVS node.

    Args:
        node_name: the node's name (remapping ``__node`` still applies).
        runtimes: where the network comes from on configure; nodes of one process should share
            one pool (a private pool is made when None).
        **node_kwargs: rclpy ``Node`` options (namespace, cli_args, parameter_overrides, ...).

    Raises:
        ValueError: a parameter value is refused at start-up (one line); the node is destroyed.
    """

    def __init__(self, node_name: str = 'evs_lifecycle_node', *, runtimes=None, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        from evs_ros.pipeline.shared import RuntimePool
        self.runtime = self.visualizer = self.cameras = None
        self.finalized_s: Optional[float] = None
        try:
            base.forward_pipeline_logs()
            self.config = params.declare_parameters(self)
            base.canonical_preset(self)
        except BaseException:
            self.destroy_node()
            raise
        self.runtimes = runtimes if runtimes is not None else RuntimePool()
        self.updates = base.ParameterUpdates(self, self.apply_config)

    def on_configure(self, state) -> TransitionCallbackReturn:
        return self._transition('configure', self._configure)

    def on_activate(self, state) -> TransitionCallbackReturn:
        return self._transition('activate', self._activate)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        return self._transition('deactivate', self._stop_cameras)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        return self._transition('cleanup', self._release_network)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.close()
        self.finalized_s = time.monotonic()
        self.get_logger().info('shut down: nothing is published, no network held')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        """After an unexpected error: release everything and go back to unconfigured."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def _transition(self, name: str, step: Callable[[], None]) -> TransitionCallbackReturn:
        """Run ``step``; any error is logged in one line and the transition FAILs."""
        try:
            step()
        except Exception as error:  # noqa: B902 - a refused transition is reported, not raised
            self.get_logger().debug(traceback.format_exc())
            self.get_logger().error(f'{name} failed: {one_line(error)}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        params.camera_names(self)  # checked now; the cameras start on activate
        runtime = self.runtimes.acquire(self.config)
        try:
            self.visualizer = base.visualizer_for(self, self.config, runtime)
        except BaseException:
            self.runtimes.release(runtime)
            raise
        self.runtime = runtime
        self.get_logger().info(f'configured: network {self.config.model.backend} loaded')

    def _activate(self) -> None:
        self.cameras = base.start_cameras(self, self.config, self.runtime, self.visualizer)
        self.get_logger().info(base.ready_text(self.config, self.cameras))

    def _stop_cameras(self) -> None:
        if self.cameras is not None:
            self.cameras.close()
            self.cameras = None
            self.get_logger().info('streams stopped: nothing is published')

    def _release_network(self) -> None:
        if self.runtime is not None:
            runtime, self.runtime, self.visualizer = self.runtime, None, None
            self.runtimes.release(runtime)
            self.get_logger().info('network released')

    def apply_config(self, config) -> None:
        """Adopt a validated run-time config (from :class:`~evs_ros.ros.node.ParameterUpdates`)."""
        base.apply_config(self, config)

    def close(self) -> None:
        """Stop the cameras (nothing is published afterwards) and release the network."""
        self._stop_cameras()
        self._release_network()

    def finished(self) -> bool:
        """Tell whether the shutdown transition is a moment past: the process may end."""
        return (self.finalized_s is not None
                and time.monotonic() - self.finalized_s >= FINISH_GRACE_S)


def main(args: Optional[list] = None) -> int:
    """``ros2 run evs_ros evs_lifecycle_node [--ros-args ...]``."""
    from evs_ros.pipeline.allocator import tune_allocator
    from evs_ros.ros.process import run_node
    tune_allocator()
    return run_node('evs_lifecycle_node', EvsLifecycleNode, args)


if __name__ == '__main__':
    sys.exit(main())
