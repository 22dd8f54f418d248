"""What ``launch/evs.launch.py`` computes without the launch packages (tested without them).

ROS name expansion of the topics the node uses, the rviz2 config rendered for a namespace and an
image remap, the lookup of rviz2, the parsing of launch arguments (each refused in one line) and
the loading of the node into a running component container (``container:=``): a bounded wait for
the container, one LoadNode call, and one line with the reason when either fails. launch and
launch_ros are not on PyPI, so everything that can be decided without them lives here.
"""

import asyncio
import os
import shutil
import tempfile
import time
from typing import Dict, Optional

import yaml

from evs_ros.config import truth_value

INPUT_TOPIC = 'image'
LOG_LEVELS = {'debug': 10, 'info': 20, 'warn': 30, 'warning': 30, 'error': 40, 'fatal': 50}
"""``log_level:=`` words and their rcutils severities."""
IMAGE_TRANSPORTS = ('raw', 'compressed')
CONTAINER_WAIT_S = 10.0
"""How long ``container:=`` waits for the container's load service (a wrong name fails then)."""
LOAD_ANSWER_S = 300.0
"""How long a container may take to load the node (the network loads and warms up meanwhile)."""
PLUGIN = 'evs_ros::EvsNode'


def parse_bool(name: str, value: str) -> bool:
    """Return a launch argument's truth value (empty: false); ValueError (one line) otherwise."""
    truth = truth_value(value) if str(value).strip() else False
    if truth is None:
        raise ValueError(f'{name}:={value}: must be true or false')
    return truth


def parse_log_level(value: str) -> str:
    """Return a ``log_level:=`` word, lower case; ValueError (one line) for anything else."""
    text = str(value).strip().lower()
    if text not in LOG_LEVELS:
        raise ValueError(f'log_level:={value}: must be one of debug, info, warn, error, fatal')
    return 'warn' if text == 'warning' else text


def parse_image_transport(value: str) -> bool:
    """``image_transport:=raw|compressed``; True for compressed (``<image>/compressed``)."""
    text = str(value).strip().lower()
    if text not in IMAGE_TRANSPORTS:
        raise ValueError(f'image_transport:={value}: must be raw or compressed')
    return text == 'compressed'


def node_overrides(values: Dict[str, str]) -> Dict[str, object]:
    """Parameters the launch arguments set over the params file (they win over it)."""
    overrides = {'publish.subscribe_compressed': parse_image_transport(values['image_transport'])}
    if values['operating_point']:
        overrides['operating_point.preset'] = str(values['operating_point'])
    return overrides


def absolute_namespace(namespace: str) -> str:
    """``''`` -> ``'/'``; ``'front'``, ``'/front/'`` -> ``'/front'``."""
    return '/' + '/'.join(part for part in str(namespace).split('/') if part)


def resolve_topic(topic: str, namespace: str, node_name: str = 'evs_node') -> str:
    """Return the absolute name a node ``node_name`` in ``namespace`` gives ``topic``.

    ROS 2 name expansion: absolute stays, ``~`` is the node's private namespace, relative goes
    under the namespace.
    """
    base = absolute_namespace(namespace).rstrip('/')
    if topic.startswith('/'):
        return absolute_namespace(topic)
    if topic.startswith('~'):
        return absolute_namespace(f'{base}/{node_name}/{topic[1:]}')
    return absolute_namespace(f'{base}/{topic}')


def render_rviz_config(template_text: str, namespace: str, image_topic: str) -> str:
    """Return the rviz2 config ``template_text`` with every display topic made absolute.

    The template names the node's topics as the node does (``image``, ``labels_color``, ...):
    ``image`` becomes the launch's ``image`` remap and the outputs go under ``namespace``, where
    the node publishes them.
    """
    config = yaml.safe_load(template_text)
    for display in config['Visualization Manager']['Displays']:
        topic = display.get('Topic')
        if isinstance(topic, dict) and topic.get('Value'):
            name = image_topic if topic['Value'] == INPUT_TOPIC else topic['Value']
            topic['Value'] = resolve_topic(name, namespace)
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def write_rviz_config(template_path: str, namespace: str, image_topic: str) -> str:
    """Render the template at ``template_path`` into a new temporary file; returns its path."""
    with open(template_path, encoding='utf-8') as template:
        text = render_rviz_config(template.read(), namespace, image_topic)
    descriptor, path = tempfile.mkstemp(prefix='evs_', suffix='.rviz')
    with os.fdopen(descriptor, 'w', encoding='utf-8') as config:
        config.write(text)
    return path


def find_rviz() -> Optional[str]:
    """Return the rviz2 executable.

    From the ament index (as ``ros2 run rviz2 rviz2`` finds it), else from PATH; None when rviz2 is
    not installed.
    """
    try:
        from ament_index_python.packages import get_package_prefix
        path = os.path.join(get_package_prefix('rviz2'), 'lib', 'rviz2', 'rviz2')
        if os.access(path, os.X_OK):
            return path
    except (ImportError, LookupError):  # PackageNotFoundError is a KeyError
        pass
    return shutil.which('rviz2')


def load_request(values: Dict[str, str], node_name: str):
    """Return the composition_interfaces LoadNode request for the launch arguments ``values``.

    The params file's parameters for the node, the launch's overrides, the image remap and the
    log level.

    Raises:
        ValueError, OSError: a bad argument or an unreadable params file (one line).
    """
    from composition_interfaces.srv import LoadNode
    from rclpy.parameter import Parameter

    from evs_ros.config import load_parameters
    namespace = absolute_namespace(values['namespace'])
    params = load_parameters(values['params_file'], node_name, namespace) \
        if values['params_file'] else {}
    params.update(node_overrides(values))
    request = LoadNode.Request(package_name='evs_ros', plugin_name=PLUGIN, node_name=node_name,
                               node_namespace=namespace,
                               log_level=LOG_LEVELS[parse_log_level(values['log_level'])],
                               remap_rules=[f'{INPUT_TOPIC}:={values["image"]}'])
    for name, value in params.items():
        try:
            request.parameters.append(Parameter(name, value=value).to_parameter_msg())
        except (TypeError, ValueError, AssertionError) as error:
            raise ValueError(f'params_file: {name}={value!r}: not a ROS parameter value '
                             f'({error})') from None
    return request


async def load_into_container(container: str, request, wait_s: float = CONTAINER_WAIT_S,
                              answer_s: float = LOAD_ANSWER_S) -> str:
    """Load ``request`` into the component container ``container``; its full node name.

    A coroutine (launch's OpaqueCoroutine runs it), so launch stays responsive to Ctrl-C while
    the container loads the network. Uses its own rclpy context.

    Raises:
        RuntimeError: no such container within ``wait_s``, no answer within ``answer_s``, or
            the container refused the node; one line with the reason.
    """
    import rclpy
    from composition_interfaces.srv import LoadNode
    from rclpy.executors import SingleThreadedExecutor
    service = absolute_namespace(container).rstrip('/') + '/_container/load_node'
    context = rclpy.Context()
    rclpy.init(args=[], context=context)  # not the launch's command line: no ROS arguments
    node = executor = None
    try:
        node = rclpy.create_node(f'evs_launch_loader_{os.getpid()}', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        client = node.create_client(LoadNode, service)
        if not await _poll(client.service_is_ready, executor, wait_s):
            raise RuntimeError(f'container:={container}: no component container offers '
                               f'{service} (waited {wait_s:.0f} s; `ros2 component list` shows '
                               'the running ones)')
        future = client.call_async(request)
        if not await _poll(future.done, executor, answer_s):
            raise RuntimeError(f'container {container} did not answer the load of {PLUGIN} '
                               f'within {answer_s:.0f} s')
        response = future.result()
        if not response.success:
            raise RuntimeError(f'container {container} refused to load {PLUGIN}: '
                               f'{response.error_message}')
        return response.full_node_name
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


async def _poll(predicate, executor, timeout_s: float, period_s: float = 0.05) -> bool:
    """Spin ``executor`` and yield to the event loop until ``predicate()`` or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        executor.spin_once(timeout_sec=0.0)
        await asyncio.sleep(period_s)
    return True
