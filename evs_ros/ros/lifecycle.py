"""evs_lifecycle_node: the EVS node as a managed (lifecycle) node on ``rclpy.lifecycle``.

Driven through the standard services (``~/change_state``, ``~/get_state``,
``~/get_available_states``, ``~/get_available_transitions``), e.g. by ``ros2 lifecycle set`` or a
Nav2-style lifecycle manager. It holds the same :class:`~evs_ros.ros.core.NodeCore` as
``evs_node`` and takes one of its steps per transition:

- unconfigured (start): parameters declared and checked; no network, no topics.
- configure -> inactive: the network is loaded and warmed up (from a
  :class:`~evs_ros.pipeline.shared.RuntimePool`, shared with the other nodes of a container) and
  the publishers are created: lifecycle publishers, silent until activated.
- activate -> active: the cameras subscribe ``image`` and publish.
- deactivate -> inactive: the streams and subscriptions are stopped; the publishers stay, silent.
- cleanup -> unconfigured: publishers destroyed, the network released (freed when its last user
  goes).
- shutdown, from any state -> finalized: everything is released; the process keeps running (as
  an rclcpp lifecycle node does) until SIGINT/SIGTERM, exit code 0.

A transition that cannot be made (a bad backend, a missing weights file) logs one line with the
reason and returns FAILURE: the node stays in the state it was in. Parameters that change at run
time are applied in every state; model and runtime settings are read at start-up, as for
``evs_node``. ``evs_container`` loads this node as ``evs_ros::EvsLifecycleNode``.
"""

import sys
import traceback
from typing import Callable, Optional

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from evs_ros.errors import one_line
from evs_ros.ros.core import NodeCore


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
        try:
            self.core = NodeCore(self, runtimes)
        except BaseException:
            self.destroy_node()
            raise

    def on_configure(self, state) -> TransitionCallbackReturn:
        return self._transition('configure', self._configure) or super().on_configure(state)

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # publishers first: no first output is swallowed
        if result == TransitionCallbackReturn.SUCCESS:
            failure = self._transition('activate', self.core.activate)
            if failure:
                super().on_deactivate(state)
                return failure
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        return self._transition('deactivate', self._deactivate) or super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        return self._transition('cleanup', self._cleanup) or super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.core.close()
        self.get_logger().info('shut down (finalized): nothing is published, no network held; '
                               'the process ends with SIGINT/SIGTERM')
        return super().on_shutdown(state)

    def on_error(self, state) -> TransitionCallbackReturn:
        """After an unexpected error: release everything and go back to unconfigured."""
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def _transition(self, name: str, step: Callable[[], None]
                    ) -> Optional[TransitionCallbackReturn]:
        """Run ``step``: None when it worked, else FAILURE after one line with the reason."""
        try:
            step()
        except Exception as error:  # noqa: B902 - a refused transition is reported, not raised
            self.get_logger().debug(traceback.format_exc())
            self.get_logger().error(f'{name} failed: {one_line(error)}')
            return TransitionCallbackReturn.FAILURE
        return None

    def _configure(self) -> None:
        self.core.configure()
        self.get_logger().info(f'configured: network {self.core.config.model.backend} loaded; '
                               'publishers created, silent until activated')

    def _deactivate(self) -> None:
        if self.core.deactivate():
            self.get_logger().info('streams stopped: nothing is published (publishers stay)')

    def _cleanup(self) -> None:
        if self.core.cleanup():
            self.get_logger().info('network released, publishers destroyed')

    def close(self) -> None:
        """Stop the cameras (nothing is published afterwards) and release the network."""
        self.core.close()


def main(args: Optional[list] = None) -> int:
    """``ros2 run evs_ros evs_lifecycle_node [--ros-args ...]``."""
    from evs_ros.pipeline.allocator import tune_allocator
    from evs_ros.ros.process import run_node
    tune_allocator()
    return run_node('evs_lifecycle_node', EvsLifecycleNode, args)


if __name__ == '__main__':
    sys.exit(main())
