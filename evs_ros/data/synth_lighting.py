"""Sun shadows and drifting cloud shadows of the synthetic benchmark (design §6).

Static boxes (buildings, walls, poles, trunks, parked geometry) cast hard-edged, slightly blurred
shadows on the ground: each box is projected along the sun direction onto y = 0 and filled into
a top-down shadow map once per snippet. Clouds drift with the wind and dim the sun on every
surface, so brightness is not constant over time (as for real cameras); labels and flow are
unaffected.
"""

import cv2
import numpy as np

from evs_ros.data.synth_textures import value_noise


class GroundShadow:
    """Top-down shadow map over x in ``x_range``, z in ``z_range`` (metres)."""

    def __init__(self, casters: np.ndarray, sun: np.ndarray, x_range, z_range,
                 resolution_m: float = 0.1, softness_m: float = 0.12):
        self.x0, self.z0 = float(x_range[0]), float(z_range[0])
        self.resolution_m = resolution_m
        cols = int(np.ceil((x_range[1] - x_range[0]) / resolution_m))
        rows = int(np.ceil((z_range[1] - z_range[0]) / resolution_m))
        shadow = np.zeros((rows, cols), np.uint8)
        for box in casters:
            hull = self._footprint(box, sun)
            cv2.fillConvexPoly(shadow, hull, 255)
        sigma = softness_m / resolution_m
        self.map = cv2.GaussianBlur(shadow, (0, 0), sigma).astype(np.float32) / 255.0

    def _footprint(self, box, sun) -> np.ndarray:
        x0, x1, y0, y1, z0, z1 = box
        corners = np.array([(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])
        ground_x = corners[:, 0] - corners[:, 1] * sun[0] / sun[1]
        ground_z = corners[:, 2] - corners[:, 1] * sun[2] / sun[1]
        cells = np.stack([(ground_x - self.x0) / self.resolution_m,
                          (ground_z - self.z0) / self.resolution_m], 1)
        cells = np.clip(cells, -1e5, 1e5).astype(np.int32)
        return cv2.convexHull(cells)

    def lookup(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Shadow amount float32 in [0, 1] at ground points (outside the map: 0)."""
        col = np.floor((x - self.x0) / self.resolution_m).astype(np.int64)
        row = np.floor((z - self.z0) / self.resolution_m).astype(np.int64)
        inside = (col >= 0) & (col < self.map.shape[1]) & (row >= 0) & (row < self.map.shape[0])
        out = np.zeros(x.shape, np.float32)
        out[inside] = self.map[row[inside], col[inside]]
        return out


def cloud_light(x: np.ndarray, z: np.ndarray, time_s: float, wind: np.ndarray, amount: float,
                seed: int) -> np.ndarray:
    """Sun transmission float32 in [1 - amount, 1] under drifting clouds (wind in m/s)."""
    if amount <= 0:
        return np.ones(x.shape, np.float32)
    cover = value_noise((x - wind[0] * time_s) / 35.0, (z - wind[1] * time_s) / 35.0, seed + 17)
    return (1.0 - amount * np.clip((cover - 0.45) * 4.0, 0.0, 1.0)).astype(np.float32)
