"""What ``launch/evs.launch.py`` computes without the launch packages (tested without them).

ROS name expansion of the topics the node uses, the rviz2 config rendered for a namespace and an
image remap, the lookup of rviz2 and the parsing of launch arguments. launch and launch_ros are
not on PyPI, so everything that can be decided without them lives here.
"""

import os
import shutil
import tempfile
from typing import Optional

import yaml

from evs_ros.config import truth_value

INPUT_TOPIC = 'image'


def parse_bool(name: str, value: str) -> bool:
    """Return a launch argument's truth value (empty: false); ValueError (one line) otherwise."""
    truth = truth_value(value) if str(value).strip() else False
    if truth is None:
        raise ValueError(f'{name}:={value}: must be true or false')
    return truth


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
