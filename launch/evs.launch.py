"""Launch evs_node (and optionally rviz2) for one camera.

    ros2 launch evs_ros evs.launch.py image:=/camera/image_raw namespace:=front \
        params_file:=/path/to/evs.yaml rviz:=true operating_point:=EVS07

The node subscribes `<namespace>/image` (remapped to the `image` argument) and publishes
`<namespace>/labels`, `labels_color`, `overlay`, `inconsistency_mask`, `status` and `/diagnostics`.
The FastDDS profile with a large shared-memory segment is exported unless the user already set
FASTDDS_DEFAULT_PROFILES_FILE (best-effort images of 1024x512 and larger are lost with FastDDS
defaults).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('evs_ros')
    default_params = os.path.join(share, 'config', 'evs.yaml')
    fastdds_profile = os.path.join(share, 'config', 'fastdds_large_images.xml')
    rviz_config = os.path.join(share, 'rviz', 'evs.rviz')

    arguments = [
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('image', default_value='image',
                              description='input sensor_msgs/Image topic'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML parameters of evs_node'),
        DeclareLaunchArgument('operating_point', default_value='EVS05',
                              description='EVS01..EVS14 (paper Table 2), ADAPTIVE or PERFRAME'),
        DeclareLaunchArgument('rviz', default_value='false', description='start rviz2'),
    ]
    actions = []
    if 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
        actions.append(SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', fastdds_profile))
    node = Node(
        package='evs_ros',
        executable='evs_node',
        name='evs_node',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'),
                    {'operating_point.preset': LaunchConfiguration('operating_point')}],
        remappings=[('image', LaunchConfiguration('image'))],
        output='screen',
        emulate_tty=True,
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        namespace=LaunchConfiguration('namespace'),
        arguments=['-d', rviz_config],
        condition=IfCondition(LaunchConfiguration('rviz')),
        output='log',
    )
    return LaunchDescription(arguments + actions + [node, rviz])
