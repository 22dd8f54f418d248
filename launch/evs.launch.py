"""Launch evs_node (and optionally rviz2) for one camera, or load it into a running container.

    ros2 launch evs_ros evs.launch.py image:=/camera/image_raw namespace:=front \
        params_file:=/path/to/evs.yaml operating_point:=EVS07 log_level:=debug rviz:=true
    ros2 launch evs_ros evs.launch.py image:=/camera/image_raw image_transport:=compressed
    ros2 launch evs_ros evs.launch.py container:=/evs_container   # composable, no new process

The node subscribes `<namespace>/image` (remapped to the `image` argument; with
`image_transport:=compressed` its compressed transport `<image>/compressed`) and publishes
`<namespace>/labels`, `labels_color`, `overlay`, `inconsistency_mask`, `status`, `camera_info`
(when the camera's sits elsewhere) and `/diagnostics`.

- The params file decides the operating point unless `operating_point:=` is given.
- `log_level:=` and `image_transport:=` are checked first: a bad value ends the launch with exit
  code 1 and one line.
- `rviz:=true` starts rviz2 only when it is installed (a warning otherwise; the node still runs)
  with a config generated from rviz/evs.rviz for this namespace and image topic; closing rviz2
  ends the launch. The node exiting ends it too (exit code 1 when the node failed).
- `container:=NAME` loads `evs_ros::EvsNode` into the component container NAME (e.g. an
  `evs_container`) with one composition_interfaces LoadNode call instead of starting a process:
  the launch returns 0 once it is loaded, and 1 with one line when NAME offers no load service
  within 10 s or the container refuses the node (the reason is the container's). `log_level`
  then sets the loaded node's level.
- The FastDDS profile with a large shared-memory segment is exported unless the user already set
  FASTDDS_DEFAULT_PROFILES_FILE (large images are lost with FastDDS defaults).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, OpaqueCoroutine, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit, OnShutdown
from launch.events import Shutdown
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from evs_ros.ros.launch_support import (
    find_rviz, load_into_container, load_request, node_overrides, parse_bool, parse_log_level,
    write_rviz_config,
)

PACKAGE = 'evs_ros'
NODE_NAME = 'evs_node'
ARGUMENTS = (
    ('namespace', '', 'namespace of the node and its topics'),
    ('image', 'image', 'input sensor_msgs/Image topic (relative: under the namespace)'),
    ('image_transport', 'raw', 'raw: subscribe <image>; compressed: subscribe '
     '<image>/compressed (sensor_msgs/CompressedImage, JPEG or PNG)'),
    ('params_file', '', 'YAML parameters of evs_node'),
    ('operating_point', '', 'EVS01..EVS14 (paper Table 2), ADAPTIVE or PERFRAME; empty: the '
     "params file's preset (EVS05 when it names none)"),
    ('log_level', 'info', 'debug, info, warn, error or fatal (--ros-args --log-level)'),
    ('rviz', 'false', 'start rviz2 on the outputs (when rviz2 is installed)'),
    ('container', '', 'load evs_ros::EvsNode into this running component container instead '
     'of starting evs_node'),
)


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    defaults = {'params_file': os.path.join(share, 'config', 'evs.yaml')}
    actions = [DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                                     description=description)
               for name, default, description in ARGUMENTS]
    if 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
        actions.append(SetEnvironmentVariable(
            'FASTDDS_DEFAULT_PROFILES_FILE',
            os.path.join(share, 'config', 'fastdds_large_images.xml')))
    actions.append(OpaqueFunction(function=launch_setup, args=[share]))
    return LaunchDescription(actions)


def launch_setup(context, share):
    """Return the actions for the given arguments (run by launch once they are known).

    A bad argument raises its one-line reason (launch exit code 1).
    """
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    values['log_level'] = parse_log_level(values['log_level'])
    if values['container']:
        request = load_request(values, NODE_NAME)
        return [OpaqueCoroutine(coroutine=load_and_report,
                                args=[values['container'], request])]
    return evs_node(values) + rviz(values, share)


async def load_and_report(context, container, request):
    """Load the node into ``container``; a failure raises its one-line reason (exit code 1)."""
    full_name = await load_into_container(container, request)
    get_logger('evs.launch').info(f'loaded {full_name} into {container}')


def node_parameters(values):
    """Return the params file, then what the arguments set (later entries win)."""
    parameters = [values['params_file']] if values['params_file'] else []
    parameters.append({name: ParameterValue(value, value_type=type(value))
                       for name, value in node_overrides(values).items()})
    return parameters


def evs_node(values):
    """evs_node as a process; its exit ends the launch (an error exit fails it)."""
    node = Node(
        package=PACKAGE,
        executable='evs_node',
        name=NODE_NAME,
        namespace=values['namespace'],
        parameters=node_parameters(values),
        remappings=[('image', values['image'])],
        arguments=['--ros-args', '--log-level', values['log_level']],
        output='screen',
        emulate_tty=True,
    )
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_node_exit))]


def on_node_exit(event, context):
    """Shut the launch down; raise (launch exit code 1) when the node failed on its own."""
    if event.returncode != 0 and not getattr(context, 'is_shutdown', False):
        raise RuntimeError(f'{NODE_NAME} exited with code {event.returncode} (reason above)')
    return [EmitEvent(event=Shutdown(reason=f'{NODE_NAME} exited'))]


def rviz(values, share):
    """rviz2 on a config for this namespace and image topic, when asked for and installed."""
    if not parse_bool('rviz', values['rviz']):
        return []
    executable = find_rviz()
    if executable is None:
        get_logger('evs.launch').warning(
            'rviz:=true but rviz2 is not installed (not in the ament index nor on PATH): '
            f'starting {NODE_NAME} without it')
        return []
    config = write_rviz_config(os.path.join(share, 'rviz', 'evs.rviz'), values['namespace'],
                               values['image'])
    process = Node(executable=executable, namespace=values['namespace'],
                   arguments=['-d', config], output='log')
    return [process,
            RegisterEventHandler(OnProcessExit(target_action=process, on_exit=[
                EmitEvent(event=Shutdown(reason='rviz2 exited'))])),
            RegisterEventHandler(OnShutdown(on_shutdown=lambda *_: _remove(config)))]


def _remove(path):
    if os.path.exists(path):
        os.remove(path)
