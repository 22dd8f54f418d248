"""Procedural street scenes for the synthetic benchmark (design §6; paper §4.1 uses Cityscapes).

A scene is a flat table of textured rectangles in world coordinates (metres; x right, y up,
z forward along the street). Each rectangle is ``origin + a * axis_u + b * axis_v`` with
``a, b`` in [0, 1]; its normal is ``axis_u x axis_v``. Boxes are five rectangles, billboards
(people, bicycles, tree crowns, signs) are one rectangle with an analytic alpha shape. Every
rectangle belongs to an object; object 0 is the static world, others translate with constant
velocity, so the exact optical flow of every surface point is known.
"""

from dataclasses import dataclass, field
from typing import List

import numpy as np

# materials (shading functions in synth_textures.py)
ROAD, SIDEWALK, CURB, TERRAIN, FACADE, WALL, FENCE, METAL, SIGN, LIGHT, TRUNK, FOLIAGE, \
    PERSON, VEHICLE, CYCLE = range(15)
# alpha shapes (evaluated while rasterising, in synth_render.py)
SOLID, DISC, WALKER, SEATED, BIKE_SIDE, MOTO_SIDE, CYCLE_REAR, MESH, CIRCLE, TRIANGLE, \
    DIAMOND = range(11)


@dataclass
class Scene:
    """Arrays describing N rectangles and M rigid objects (all float64 unless noted)."""

    origin: np.ndarray      # (N, 3) world position of corner a = b = 0 at time 0
    axis_u: np.ndarray      # (N, 3)
    axis_v: np.ndarray      # (N, 3)
    label: np.ndarray       # (N,) uint8 trainId
    material: np.ndarray    # (N,) int
    shape: np.ndarray       # (N,) int alpha shape
    color: np.ndarray       # (N, 3) RGB in [0, 1]
    params: np.ndarray      # (N, 4) material / shape parameters
    two_sided: np.ndarray   # (N,) bool
    obj: np.ndarray         # (N,) int object index
    velocity: np.ndarray    # (M, 3) m/s of each object; row 0 = static world (zeros)
    casters: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    """(K, 6) static boxes x0, x1, y0, y1, z0, z1 that cast shadows on the ground."""


class SceneBuilder:
    """Accumulates rectangles; :meth:`build` returns a :class:`Scene`."""

    def __init__(self):
        self.rows: List[tuple] = []
        self.velocities: List[np.ndarray] = [np.zeros(3)]
        self.casters: List[tuple] = []

    def new_object(self, velocity) -> int:
        """Register a moving object with velocity (3,) m/s; returns its index."""
        self.velocities.append(np.asarray(velocity, dtype=np.float64))
        return len(self.velocities) - 1

    def rect(self, origin, axis_u, axis_v, label, material, color, shape=SOLID,
             params=(0, 0, 0, 0), two_sided=False, obj=0):
        """Add one rectangle ``origin + a * axis_u + b * axis_v``."""
        self.rows.append((np.asarray(origin, float), np.asarray(axis_u, float),
                          np.asarray(axis_v, float), label, material, shape,
                          np.asarray(color, float), np.asarray(params, float), two_sided, obj))

    def box(self, center_bottom, size, label, material, color, params=(0, 0, 0, 0), obj=0,
            top=True):
        """Add a box aligned with the axes (4 sides + optional top), faces oriented outwards.

        ``size`` = (sx, sy, sz) metres; ``params[1]`` is overwritten with the face kind
        (0 = side facing +-x, 1 = facing +-z, 2 = top) for materials that need it.
        """
        cx, y0, cz = center_bottom
        sx, sy, sz = size
        center = np.array([cx, y0 + sy / 2, cz])
        x0, x1, z0, z1, y1 = cx - sx / 2, cx + sx / 2, cz - sz / 2, cz + sz / 2, y0 + sy
        if obj == 0:
            self.casters.append((x0, x1, y0, y1, z0, z1))
        faces = [((x0, y0, z0), (0, 0, sz), (0, sy, 0), 0),
                 ((x1, y0, z0), (0, 0, sz), (0, sy, 0), 0),
                 ((x0, y0, z0), (sx, 0, 0), (0, sy, 0), 1),
                 ((x0, y0, z1), (sx, 0, 0), (0, sy, 0), 1)]
        if top:
            faces.append(((x0, y1, z0), (sx, 0, 0), (0, 0, sz), 2))
        for origin, axis_u, axis_v, kind in faces:
            origin, axis_u, axis_v = (np.asarray(v, float) for v in (origin, axis_u, axis_v))
            face_center = origin + axis_u / 2 + axis_v / 2
            if np.dot(np.cross(axis_u, axis_v), face_center - center) < 0:
                origin, axis_u = origin + axis_u, -axis_u
            face_params = list(params)
            face_params[1] = kind
            self.rect(origin, axis_u, axis_v, label, material, color, params=face_params, obj=obj)

    def build(self) -> Scene:
        """Stack the accumulated rows into arrays."""
        cols = list(zip(*self.rows))
        return Scene(
            origin=np.stack(cols[0]), axis_u=np.stack(cols[1]), axis_v=np.stack(cols[2]),
            label=np.array(cols[3], np.uint8), material=np.array(cols[4], int),
            shape=np.array(cols[5], int), color=np.clip(np.stack(cols[6]), 0, 1),
            params=np.stack(cols[7]), two_sided=np.array(cols[8], bool),
            obj=np.array(cols[9], int), velocity=np.stack(self.velocities),
            casters=np.array(self.casters, float).reshape(-1, 6))
