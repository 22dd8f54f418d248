"""Z-buffered ray-cast rasteriser and exact optical flow for the synthetic benchmark (design §6).

For every pixel centre (x, y) the rasteriser finds the nearest rectangle of the scene hit by the
camera ray and records its index and rectangle coordinates (a, b). From these the world point is
known exactly, so the label is exact and so is the flow: the same surface point, moved back with
its object by one frame, is projected into the previous camera.

Flow convention (the project's): ``flow_cur_to_prev[y, x] = p_prev - (x, y)`` (float32, pixels);
``cv2.remap(prev, grid + flow, INTER_NEAREST)`` backward-warps frame t-1 onto frame t.
"""

from dataclasses import dataclass

import numpy as np

from evs_ros.data.synth_scene import SOLID, Scene
from evs_ros.data.synth_shapes import alpha_mask

NEAR_M = 0.2
FAR_M = 400.0
SKY = -1


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: world point P -> cam = rotation @ (P - position); pixel = K cam / z."""

    position: np.ndarray   # (3,) metres
    rotation: np.ndarray   # (3, 3) rows = camera x (right), y (down), z (forward) in world
    fx: float
    fy: float
    cx: float
    cy: float

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera coordinates (..., 3)."""
        return (points - self.position) @ self.rotation.T

    def project(self, cam: np.ndarray):
        """Camera coordinates (..., 3) -> pixel x, y arrays (z must be > 0)."""
        return self.fx * cam[..., 0] / cam[..., 2] + self.cx, \
            self.fy * cam[..., 1] / cam[..., 2] + self.cy


def look_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """World-to-camera rotation for yaw (left-right), pitch (up positive), roll, radians."""
    forward = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    down = np.cross(right, forward)
    right, down = (np.cos(roll) * right + np.sin(roll) * down,
                   -np.sin(roll) * right + np.cos(roll) * down)
    return np.stack([right, down, forward])


@dataclass
class Buffers:
    """Per-pixel rasteriser output for one frame (H, W arrays)."""

    prim: np.ndarray    # int32 rectangle index, SKY (-1) where no surface
    depth: np.ndarray   # float32 camera z in metres (inf for sky)
    a: np.ndarray       # float32 rectangle coordinate along axis_u, [0, 1]
    b: np.ndarray       # float32 rectangle coordinate along axis_v, [0, 1]
    rays: np.ndarray    # float32 (H, W, 3) world ray directions with camera z = 1


def pixel_rays(camera: Camera, width: int, height: int) -> np.ndarray:
    """World directions (H, W, 3) float32 of pixel-centre rays, scaled to camera z = 1."""
    xs = (np.arange(width, dtype=np.float32) - camera.cx) / camera.fx
    ys = (np.arange(height, dtype=np.float32) - camera.cy) / camera.fy
    cam = np.empty((height, width, 3), np.float32)
    cam[..., 0] = xs[None, :]
    cam[..., 1] = ys[:, None]
    cam[..., 2] = 1.0
    return cam @ camera.rotation.astype(np.float32)


def origins_at(scene: Scene, time_s: float) -> np.ndarray:
    """Rectangle origins (N, 3) at ``time_s`` (objects translate with constant velocity)."""
    return scene.origin + scene.velocity[scene.obj] * time_s


def _screen_boxes(scene, origins, camera, width, height):
    """Vectorised culling; returns indices and integer pixel boxes (x0, x1, y0, y1)."""
    corners = origins[:, None, :] + np.stack([
        np.zeros_like(scene.axis_u), scene.axis_u, scene.axis_u + scene.axis_v, scene.axis_v], 1)
    cam = camera.to_camera(corners)                                   # (N, 4, 3)
    normal = np.cross(scene.axis_u, scene.axis_v)
    facing = np.einsum('nk,nk->n', camera.position - origins, normal) > 0
    keep = (facing | scene.two_sided) & (cam[..., 2].max(1) > NEAR_M) & \
        (cam[..., 2].min(1) < FAR_M)
    boxes = np.zeros((len(origins), 4), np.int64)
    for index in np.nonzero(keep)[0]:
        polygon = _clip_near(cam[index])
        px, py = camera.project(polygon)
        boxes[index] = (max(int(np.floor(px.min())), 0), min(int(np.ceil(px.max())) + 1, width),
                        max(int(np.floor(py.min())), 0), min(int(np.ceil(py.max())) + 1, height))
    keep &= (boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2])
    return np.nonzero(keep)[0], boxes


def _clip_near(polygon: np.ndarray) -> np.ndarray:
    """Clip a camera-space polygon (K, 3) against the plane z = NEAR_M."""
    z = polygon[:, 2]
    if z.min() >= NEAR_M:
        return polygon
    out = []
    for i in range(len(polygon)):
        p, q = polygon[i], polygon[(i + 1) % len(polygon)]
        if p[2] >= NEAR_M:
            out.append(p)
        if (p[2] >= NEAR_M) != (q[2] >= NEAR_M):
            out.append(p + (q - p) * (NEAR_M - p[2]) / (q[2] - p[2]))
    return np.array(out)


def rasterize(scene: Scene, camera: Camera, width: int, height: int, time_s: float) -> Buffers:
    """Render the nearest surface of every pixel (see module docstring)."""
    rays = pixel_rays(camera, width, height)
    depth = np.full((height, width), np.inf, np.float32)
    prim = np.full((height, width), SKY, np.int32)
    coord_a = np.zeros((height, width), np.float32)
    coord_b = np.zeros((height, width), np.float32)
    origins = origins_at(scene, time_s)
    indices, boxes = _screen_boxes(scene, origins, camera, width, height)
    len_u = np.linalg.norm(scene.axis_u, axis=1)
    len_v = np.linalg.norm(scene.axis_v, axis=1)
    for index in indices:
        x0, x1, y0, y1 = boxes[index]
        axis_u, axis_v = scene.axis_u[index], scene.axis_v[index]
        basis = np.stack([np.cross(axis_u, axis_v), axis_u / len_u[index] ** 2,
                          axis_v / len_v[index] ** 2], 1).astype(np.float32)
        offset = (camera.position - origins[index]) @ basis            # (3,)
        proj = rays[y0:y1, x0:x1] @ basis                              # (h, w, 3)
        with np.errstate(divide='ignore', invalid='ignore'):
            t = -offset[0] / proj[..., 0]
        a = offset[1] + t * proj[..., 1]
        b = offset[2] + t * proj[..., 2]
        depth_box = depth[y0:y1, x0:x1]
        hit = (t > NEAR_M) & (t < depth_box) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        if scene.shape[index] != SOLID:
            rows, cols = np.nonzero(hit)
            opaque = alpha_mask(scene.shape[index], a[rows, cols], b[rows, cols], len_u[index],
                                len_v[index], scene.params[index], time_s)
            hit[rows[~opaque], cols[~opaque]] = False
        depth_box[hit] = t[hit]
        prim[y0:y1, x0:x1][hit] = index
        coord_a[y0:y1, x0:x1][hit] = a[hit]
        coord_b[y0:y1, x0:x1][hit] = b[hit]
    return Buffers(prim=prim, depth=depth, a=coord_a, b=coord_b, rays=rays)


def surface_points(scene: Scene, buffers: Buffers, time_s: float) -> np.ndarray:
    """World points (H, W, 3) float64 of every non-sky pixel at ``time_s`` (sky: zeros)."""
    prim = np.maximum(buffers.prim, 0)
    points = origins_at(scene, time_s)[prim] + scene.axis_u[prim] * buffers.a[..., None] + \
        scene.axis_v[prim] * buffers.b[..., None]
    return np.where((buffers.prim >= 0)[..., None], points, 0.0)


def exact_flow(scene: Scene, cur: Buffers, time_s: float, frame_dt_s: float, camera_prev: Camera,
               prev_prim: np.ndarray, points: np.ndarray = None):
    """Exact flow to the previous frame and the visibility mask.

    ``points`` may pass :func:`surface_points` of ``cur`` if already computed.

    Returns:
        flow_cur_to_prev: float32 (H, W, 2) pixels.
        valid: bool (H, W); True where the surface point of the pixel was in view and not hidden
        at t-1 (nearest previous pixel shows the same rectangle; sky counts as one surface).
    """
    height, width = cur.prim.shape
    points = surface_points(scene, cur, time_s) if points is None else points
    points_prev = points - \
        scene.velocity[scene.obj[np.maximum(cur.prim, 0)]] * frame_dt_s
    cam = camera_prev.to_camera(points_prev)
    sky = cur.prim == SKY
    cam[sky] = cur.rays[sky] @ camera_prev.rotation.T                 # directions at infinity
    in_front = cam[..., 2] > NEAR_M * 0.5
    cam[..., 2] = np.where(in_front, cam[..., 2], 1.0)
    x_prev, y_prev = camera_prev.project(cam)
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    flow = np.stack([x_prev - grid_x, y_prev - grid_y], -1).astype(np.float32)
    col = np.floor(x_prev + 0.5)
    row = np.floor(y_prev + 0.5)
    inside = in_front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    seen = np.zeros_like(inside)
    seen[inside] = prev_prim[row[inside].astype(np.int64), col[inside].astype(np.int64)] == \
        cur.prim[inside]
    flow[~in_front] = 0.0
    return flow, seen
