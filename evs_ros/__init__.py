"""evs_ros: Efficient Video Semantic Segmentation (EVS) for ROS 2.

Dense semantic labels for every camera frame: a segmentation network on keyframes, DIS optical
flow to propagate its labels, an Inconsistencies Attention Module and a Refiner (Paul et al.).
Only :mod:`evs_ros.ros` imports ROS; everything else is plain Python/numpy/OpenCV/torch.
"""

__version__ = '0.1.0'
