"""pip install of the evs_ros library and the `evs` command line, without ROS.

Inside a ROS 2 workspace the package is built by colcon through CMakeLists.txt (ament_cmake,
which also generates the messages); this file serves `pip install .` for offline tools only.
"""

from setuptools import setup

setup()
