"""evs_node: the EVS pipeline as a ROS 2 node (design §5).

A thin adapter. :class:`EvsNode` holds a :class:`~evs_ros.ros.core.NodeCore`, the part it shares
with the managed node: parameters (:mod:`evs_ros.ros.params`), a runtime for its model settings
from a :class:`~evs_ros.pipeline.shared.RuntimePool` (one network per model config in a process:
composed nodes share it) and the cameras (:class:`~evs_ros.ros.cameras.CameraSet`), which convert
messages and publish. The node configures and activates its core at construction. Parameters of
the operating point, flow, IAM and publishing change at run time; model, runtime and QoS settings
are read at start-up. ``main()`` builds the node and spins it until SIGINT/SIGTERM
(:mod:`evs_ros.ros.process`): exit code 0, nothing published after shutdown, and one line with
exit code 2 when a setting or the model is refused.

The node is composable: ``evs_container`` (:mod:`evs_ros.ros.container`) loads it as
``evs_ros::EvsNode``; ``evs_lifecycle_node`` (:mod:`evs_ros.ros.lifecycle`) is the managed variant.
"""

import sys
from typing import Optional

from rclpy.node import Node

from evs_ros.ros.core import NodeCore


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
        self.core = None
        try:
            self.core = NodeCore(self, runtimes)
            self.core.configure()
            self.core.activate()
        except BaseException:
            self.close()
            self.destroy_node()
            raise

    def close(self) -> None:
        """Stop the cameras (nothing is published afterwards) and give the runtime back."""
        if self.core is not None:
            self.core.close()


def main(args: Optional[list] = None) -> int:
    """``ros2 run evs_ros evs_node [--ros-args ...]``."""
    from evs_ros.pipeline.allocator import tune_allocator
    from evs_ros.ros.process import run_node
    tune_allocator()  # big per-frame arrays: avoid mmap/munmap page faults on every frame
    return run_node('evs_node', EvsNode, args)


if __name__ == '__main__':
    sys.exit(main())
