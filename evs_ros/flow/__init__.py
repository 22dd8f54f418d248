"""evs_ros.flow: CPU optical flow and warping, numpy + OpenCV only (paper §3.3).

``flow_x_to_y`` arrays are float32 (H, W, 2): for each pixel p of frame x, p + flow[p] is its
position in frame y. ``FlowEstimator.calc(cur, prev)`` gives ``flow_cur_to_prev``, which the warp
functions use to pull the previous frame's labels / probabilities / features onto the current one.
"""

from evs_ros.flow.dis import FlowEstimator, create_dis, dis_parameters, to_gray
from evs_ros.flow.field import FlowField
from evs_ros.flow.warp import (
    compose_flows, identity_flow, pixel_grid, resize_flow, warp_dense, warp_labels,
)

__all__ = [
    'FlowEstimator', 'FlowField', 'compose_flows', 'create_dis', 'dis_parameters', 'identity_flow',
    'pixel_grid', 'resize_flow', 'to_gray', 'warp_dense', 'warp_labels',
]
