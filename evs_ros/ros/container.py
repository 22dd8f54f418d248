"""evs_container: a component container for Python nodes (rclpy has none).

It offers the services of rclcpp's component manager (composition_interfaces), so that
``ros2 component load/list/unload`` and launch_ros ``ComposableNodeContainer`` /
``LoadComposableNodes`` work unchanged:

- ``~/_container/load_node``: finds ``plugin_name`` among the components ``package_name``
  registers in the ament index (resource ``rclcpp_components``; evs_ros registers
  ``evs_ros::EvsNode`` and ``evs_ros::EvsLifecycleNode``), creates the node with the request's
  name, namespace, remapping rules and parameters (the container's own command line does not
  apply to it), sets its log level and answers its fully qualified name and a unique id (1, 2,
  ...).
  Anything refused (unknown package or plugin, a bad parameter or model) answers
  ``success=false`` with the one-line reason, and leaves nothing behind.
- ``~/_container/unload_node``: closes the node (nothing is published afterwards), destroys it.
- ``~/_container/list_nodes``: names and unique ids of the loaded nodes.

Every node gets the container's :class:`~evs_ros.pipeline.shared.RuntimePool`: nodes with the same
model settings share one network and inference worker, freed when the last of them is unloaded.

Executor: single-threaded by default (a load then holds up the other nodes for the seconds a
network takes to load, as rclcpp's ``component_container`` does); ``-p
use_multi_threaded_executor:=true`` (or ``evs_container_mt``) spins ``thread_num`` threads
(0 = one per core) and serves the container's services in their own callback group, so loading
a node does not stall the frames of the others.
"""

import importlib
import inspect
import re
import sys
from typing import Dict, Optional

import rclpy
from composition_interfaces.srv import ListNodes, LoadNode, UnloadNode
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.parameter import Parameter

from evs_ros.errors import one_line
from evs_ros.ros.process import close_node, make_executor, ros_process, spin_until

COMPONENTS_RESOURCE = 'rclcpp_components'
"""The ament index resource where packages list their components (``ros2 component types``)."""
LOG_LEVELS = (0, 10, 20, 30, 40, 50)
"""rcl_interfaces/Log levels a LoadNode request may ask for (0 = leave the default)."""
BOOLEAN_EXTRA_ARGUMENTS = ('use_intra_process_comms', 'forward_global_arguments')
"""rclcpp's per-node container settings; accepted (booleans) and without effect in rclpy."""
PYTHON_TARGET = re.compile(r'[A-Za-z_][\w.]*:[A-Za-z_]\w*')
NAME_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def find_plugin(package_name: str, plugin_name: str) -> type:
    """Return the node class ``package_name`` registers as ``plugin_name`` in the ament index.

    An entry is ``<plugin>;<python module>:<class>`` (rclcpp packages name a library instead).

    Raises:
        LookupError: no such package or plugin, or the plugin is not a Python class.
        ImportError: the module does not import.
    """
    from ament_index_python.resources import get_resource, has_resource
    if not has_resource(COMPONENTS_RESOURCE, package_name):
        raise LookupError(f'package {package_name!r} registers no components in the ament index '
                          f'(`ros2 component types` lists those that do)')
    content, _ = get_resource(COMPONENTS_RESOURCE, package_name)
    entries = dict(line.split(';', 1) for line in content.splitlines() if ';' in line)
    if plugin_name not in entries:
        raise LookupError(f'package {package_name!r} has no component {plugin_name!r}; it has: '
                          f'{", ".join(sorted(entries)) or "none"}')
    target = entries[plugin_name].strip()
    if not PYTHON_TARGET.fullmatch(target):
        raise LookupError(f'component {plugin_name!r} is not a Python node ({target}); load it '
                          'into an rclcpp component_container instead')
    module_name, class_name = target.split(':')
    plugin = getattr(importlib.import_module(module_name), class_name, None)
    if plugin is None:
        raise LookupError(f'component {plugin_name!r}: {module_name} has no {class_name}')
    return plugin


def node_options(request: LoadNode.Request) -> dict:
    """Return the rclpy ``Node`` keyword arguments for a LoadNode request.

    Raises:
        ValueError: a log level or container argument that cannot be honoured (one line).
    """
    if request.log_level not in LOG_LEVELS:
        raise ValueError(f'log_level={request.log_level}: must be one of 0 (unset), 10 (debug), '
                         '20 (info), 30 (warn), 40 (error), 50 (fatal)')
    namespace = request.node_namespace.strip('/')
    if request.node_name and not NAME_TOKEN.fullmatch(request.node_name):
        raise ValueError(f'node_name={request.node_name!r}: use letters, digits and _ only, '
                         'not starting with a digit')
    if namespace and not all(NAME_TOKEN.fullmatch(part) for part in namespace.split('/')):
        raise ValueError(f'node_namespace={request.node_namespace!r}: use names of letters, '
                         'digits and _ separated by /, none starting with a digit')
    for argument in request.extra_arguments:
        if (argument.name in BOOLEAN_EXTRA_ARGUMENTS
                and argument.value.type != ParameterType.PARAMETER_BOOL):
            raise ValueError(f'extra argument {argument.name} must be a boolean')
    options = {'use_global_arguments': False,  # the container's own remaps are not the node's
               'parameter_overrides': [Parameter.from_parameter_msg(p)
                                       for p in request.parameters]}
    if request.remap_rules:
        options['cli_args'] = ['--ros-args'] + [
            arg for rule in request.remap_rules for arg in ('-r', rule)]
    if namespace:
        options['namespace'] = '/' + namespace
    if request.node_name:
        options['node_name'] = request.node_name
    return options


def expected_name(plugin: type, request: LoadNode.Request) -> str:
    """Return the fully qualified name a LoadNode request gives its node (before it exists).

    The request's name and namespace, unless its remapping rules set ``__node`` / ``__ns``.
    """
    default = inspect.signature(plugin).parameters.get('node_name')
    names = {'__node': request.node_name or getattr(default, 'default', ''),
             '__ns': request.node_namespace}
    for rule in reversed(request.remap_rules):  # the first matching rule wins
        source, _, target = rule.partition(':=')
        if source in names:
            names[source] = target
    namespace = names['__ns'].strip('/')
    return f'/{namespace}/{names["__node"]}' if namespace else f'/{names["__node"]}'


class EvsContainer(Node):
    """The container node: loads, lists and unloads nodes; all share one RuntimePool.

    Args:
        node_name: the container's name (``--ros-args -r __node:=NAME`` renames it).
        multi_threaded: default of the ``use_multi_threaded_executor`` parameter.
        **node_kwargs: rclpy ``Node`` options.
    """

    def __init__(self, node_name: str = 'evs_container', *, multi_threaded: bool = False,
                 **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        from evs_ros.pipeline.shared import RuntimePool
        self.multi_threaded = bool(self.declare_parameter(
            'use_multi_threaded_executor', multi_threaded, ParameterDescriptor(
                description='spin the loaded nodes on several threads (read at start-up)',
                read_only=True)).value)
        self.thread_num = int(self.declare_parameter('thread_num', 0, ParameterDescriptor(
            description='threads of the multi-threaded executor, 0 = one per core (read at '
            'start-up)', read_only=True)).value)
        self.runtimes = RuntimePool()
        self.loaded: Dict[int, Node] = {}
        self.next_id = 1
        group = MutuallyExclusiveCallbackGroup()
        for srv_type, name, callback in ((LoadNode, 'load_node', self.on_load_node),
                                         (UnloadNode, 'unload_node', self.on_unload_node),
                                         (ListNodes, 'list_nodes', self.on_list_nodes)):
            self.create_service(srv_type, f'~/_container/{name}', callback, callback_group=group)

    def on_load_node(self, request: LoadNode.Request, response: LoadNode.Response):
        try:
            node = self.load(request)
        except Exception as error:  # noqa: B902 - a refused request must not stop the container
            response.success, response.error_message = False, one_line(error)
            self.get_logger().error(f'could not load {request.plugin_name}: '
                                    f'{response.error_message}')
            return response
        response.success, response.unique_id = True, self.next_id
        response.full_node_name = node.get_fully_qualified_name()
        self.loaded[self.next_id] = node
        self.next_id += 1
        self.executor.add_node(node)
        self.get_logger().info(f'loaded {response.full_node_name} ({request.plugin_name}) as '
                               f'unique id {response.unique_id}; networks in memory: '
                               f'{len(self.runtimes)}')
        return response

    def load(self, request: LoadNode.Request) -> Node:
        """Create the node a LoadNode request asks for (raises the reason when refused)."""
        plugin = find_plugin(request.package_name, request.plugin_name)
        options = node_options(request)
        self._check_unique(expected_name(plugin, request))
        if 'runtimes' in inspect.signature(plugin).parameters:  # evs_ros nodes share networks
            options['runtimes'] = self.runtimes
        node = plugin(context=self.context, **options)
        try:
            self._check_unique(node.get_fully_qualified_name())
            if request.log_level:
                rclpy.logging.set_logger_level(node.get_logger().name,
                                               LoggingSeverity(request.log_level))
        except BaseException:
            close_node(node)
            raise
        return node

    def _check_unique(self, full_name: str) -> None:
        for unique_id, node in self.loaded.items():
            if node.get_fully_qualified_name() == full_name:
                raise ValueError(f'a node named {full_name} is already loaded (unique id '
                                 f'{unique_id}); give this one another name or namespace')

    def on_unload_node(self, request: UnloadNode.Request, response: UnloadNode.Response):
        node = self.loaded.pop(request.unique_id, None)
        if node is None:
            response.success = False
            response.error_message = f'no node with unique id {request.unique_id} is loaded'
            return response
        full_name = node.get_fully_qualified_name()
        self.executor.remove_node(node)
        close_node(node)
        response.success = True
        self.get_logger().info(f'unloaded {full_name} (unique id {request.unique_id}); '
                               f'networks in memory: {len(self.runtimes)}')
        return response

    def on_list_nodes(self, request: ListNodes.Request, response: ListNodes.Response):
        response.unique_ids = list(self.loaded)
        response.full_node_names = [node.get_fully_qualified_name()
                                    for node in self.loaded.values()]
        return response

    def close(self) -> None:
        """Unload every node, newest first (called before the container is destroyed)."""
        for unique_id in sorted(self.loaded, reverse=True):
            close_node(self.loaded.pop(unique_id))


def main(args: Optional[list] = None, multi_threaded: bool = False) -> int:
    """``ros2 run evs_ros evs_container [--ros-args -p use_multi_threaded_executor:=true]``."""
    from evs_ros.pipeline.allocator import tune_allocator
    tune_allocator()
    with ros_process(args) as stop:
        container = EvsContainer(multi_threaded=multi_threaded)
        executor = make_executor(container.multi_threaded, container.thread_num or None)
        executor.add_node(container)
        threads = container.thread_num or 'one per core'
        container.get_logger().info('ready to load nodes (' + (
            f'multi-threaded executor, threads: {threads})' if container.multi_threaded
            else 'single-threaded executor)'))
        try:
            spin_until(stop, executor)
        finally:
            for node in list(container.loaded.values()):
                executor.remove_node(node)
            close_node(container)
            executor.shutdown(timeout_sec=1.0)
    return 0


def main_multi_threaded(args: Optional[list] = None) -> int:
    """``ros2 run evs_ros evs_container_mt``: the container with a multi-threaded executor."""
    return main(args, multi_threaded=True)


if __name__ == '__main__':
    sys.exit(main())
