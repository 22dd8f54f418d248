"""evs_ros: Efficient Video Semantic Segmentation (EVS) for ROS 2.

Dense semantic labels for every camera frame: a segmentation network on keyframes, DIS optical
flow to propagate its labels, an Inconsistencies Attention Module and a Refiner (Paul et al.).
Only :mod:`evs_ros.ros` imports ROS; everything else is plain Python/numpy/OpenCV/torch.
"""

from pkgutil import extend_path

# The generated messages (evs_ros.msg and their type support libraries) exist only in the colcon
# install space. From the repository root the source tree comes first on sys.path and shadows the
# install, so search every evs_ros directory on sys.path for subpackages, in sys.path order.
__path__ = extend_path(__path__, __name__)

__version__ = '0.2.0'
