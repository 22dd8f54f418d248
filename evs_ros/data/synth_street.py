"""Random street layouts for the synthetic benchmark: what stands where (design §6).

Right-hand traffic along +z. Cross-section from the centre line outwards: road (with a parking
lane when wide), curb, sidewalk (trees, poles with signs and lights, pedestrians), an optional
terrain strip, then buildings, walls and fences. Moving cars, trucks, buses, trams, pedestrians
and riders give independent motion, occlusion and disocclusion.
"""

from dataclasses import dataclass

import numpy as np

from evs_ros.data import synth_scene as S
from evs_ros.data.labels import TRAIN_ID as T
from evs_ros.data.synth_scene import SceneBuilder

CURB_HEIGHT_M = 0.15


@dataclass(frozen=True)
class StreetLayout:
    """Cross-section of one street (metres)."""

    road_half_width: float
    sidewalk_width: float
    terrain_width: float
    z_start: float
    z_end: float

    @property
    def building_x(self) -> float:
        """Distance from the centre line to the building fronts."""
        return self.road_half_width + self.sidewalk_width + self.terrain_width

    @property
    def camera_lane_x(self) -> float:
        """Centre of the right driving lane."""
        parking = 2.2 if self.road_half_width >= 5.5 else 0.0
        return (self.road_half_width - parking) / 2


def random_layout(rng: np.random.Generator, travel_m: float) -> StreetLayout:
    """Draw a street cross-section long enough for ``travel_m`` metres of camera motion."""
    return StreetLayout(road_half_width=rng.uniform(3.6, 7.5),
                        sidewalk_width=rng.uniform(2.0, 5.0),
                        terrain_width=rng.choice([0.0, rng.uniform(1.0, 4.0)]),
                        z_start=-15.0, z_end=travel_m + 170.0)


def _grey(rng, low, high, tint=0.04):
    level = rng.uniform(low, high)
    return np.clip(level + rng.uniform(-tint, tint, 3), 0, 1)


def _vivid(rng):
    palette = [(0.55, 0.05, 0.05), (0.05, 0.15, 0.45), (0.85, 0.85, 0.85), (0.08, 0.08, 0.08),
               (0.45, 0.45, 0.48), (0.1, 0.3, 0.15), (0.7, 0.55, 0.1), (0.3, 0.05, 0.3),
               (0.5, 0.3, 0.15), (0.2, 0.35, 0.6)]
    return np.clip(np.array(palette[rng.integers(len(palette))]) + rng.uniform(-.06, .06, 3), 0, 1)


def add_ground(b: SceneBuilder, rng, lay: StreetLayout) -> None:
    """Road, curbs, sidewalks, terrain strips and the ground behind the buildings."""
    z0, length = lay.z_start, lay.z_end - lay.z_start
    w = lay.road_half_width
    crossing_z = rng.uniform(25, 80) if rng.random() < 0.6 else -1000.0
    b.rect((-w, 0, z0), (2 * w, 0, 0), (0, 0, length), T['road'], S.ROAD, _grey(rng, .25, .4, .02),
           params=(2.2 if w >= 5.5 else 0.0, 0, crossing_z - z0, rng.uniform()), two_sided=True)
    for side in (-1, 1):
        x_curb = side * w
        b.rect((x_curb, 0, z0), (0, CURB_HEIGHT_M, 0), (0, 0, length), T['sidewalk'], S.CURB,
               _grey(rng, .55, .7), two_sided=True)
        x = w
        strips = [(lay.sidewalk_width, T['sidewalk'], S.SIDEWALK, _sidewalk_color(rng)),
                  (lay.terrain_width, T['terrain'], S.TERRAIN, _terrain_color(rng))]
        if rng.random() < 0.5:
            strips.reverse()
        strips.append((60.0, T['terrain'], S.TERRAIN, _terrain_color(rng)))
        for width, label, material, color in strips:
            if width <= 0:
                continue
            x_near = side * x
            b.rect((x_near if side > 0 else x_near - width, CURB_HEIGHT_M, z0), (width, 0, 0),
                   (0, 0, length), label, material, color, params=(0, 0, rng.uniform(), 0),
                   two_sided=True)
            x += width


def _sidewalk_color(rng):
    base = np.array([0.62, 0.55, 0.52]) if rng.random() < 0.5 else np.array([0.55, 0.55, 0.57])
    return np.clip(base + rng.uniform(-0.07, 0.07, 3), 0, 1)


def _terrain_color(rng):
    return np.clip(np.array([0.42, 0.5, 0.22]) + rng.uniform(-0.08, 0.08, 3), 0, 1)


def add_buildings(b: SceneBuilder, rng, lay: StreetLayout) -> None:
    """Rows of buildings on both sides with gaps filled by walls, fences or trees."""
    for side in (-1, 1):
        z = lay.z_start
        while z < lay.z_end:
            width = rng.uniform(6, 26)
            if rng.random() < 0.35:
                _add_gap(b, rng, lay, side, z, width)
            else:
                _add_building(b, rng, lay, side, z, width)
            z += width
        x_back = side * (lay.building_x + 40)
        b.box((x_back, 0, (lay.z_start + lay.z_end) / 2),
              (20, rng.uniform(8, 22), lay.z_end - lay.z_start),
              T['building'], S.FACADE, _grey(rng, .4, .6), params=(3.2, 0, 2.5, rng.uniform()))
    width = 2 * lay.building_x + 100
    b.rect((-width / 2, 0, lay.z_end), (width, 0, 0), (0, rng.uniform(6, 14), 0), T['building'],
           S.FACADE,
           _grey(rng, .45, .6), params=(3.5, 0, 3.0, rng.uniform()), two_sided=True)


def _add_building(b, rng, lay, side, z, width):
    height = rng.uniform(6, 22)
    depth = rng.uniform(10, 20)
    x = side * (lay.building_x + rng.uniform(0, 1.5) + depth / 2)
    color = _facade_color(rng)
    params = (rng.uniform(2.9, 3.6), 0, rng.uniform(1.6, 3.2), rng.uniform())
    b.box((x, 0, z + width / 2), (depth, height, width), T['building'], S.FACADE, color,
          params=params, top=False)
    if rng.random() < 0.3:  # low garden wall in front of the building
        _add_wall(b, rng, side * (lay.building_x - 0.2), z, width)


def _add_wall(b, rng, x, z, width):
    height = rng.uniform(0.8, 2.5)
    b.box((x, CURB_HEIGHT_M, z + width / 2), (0.3, height, width), T['wall'], S.WALL,
          _facade_color(rng) * rng.uniform(0.7, 1.0),
          params=(rng.uniform(0.25, 0.6), 0, 0, rng.uniform()))


def _facade_color(rng):
    choices = [(0.6, 0.58, 0.55), (0.75, 0.7, 0.6), (0.5, 0.35, 0.3), (0.4, 0.4, 0.45),
               (0.8, 0.78, 0.72), (0.55, 0.5, 0.4), (0.65, 0.45, 0.35)]
    return np.clip(np.array(choices[rng.integers(len(choices))]) + rng.uniform(-.06, .06, 3), 0, 1)


def _add_gap(b, rng, lay, side, z, width):
    x_front = side * lay.building_x
    kind = rng.integers(3)
    if kind == 0:  # wall
        _add_wall(b, rng, x_front + side * 0.15, z, width)
    elif kind == 1:  # fence
        height = rng.uniform(1.0, 2.2)
        b.rect((x_front, CURB_HEIGHT_M, z), (0, 0, width), (0, height, 0), T['fence'], S.FENCE,
               _grey(rng, .3, .6, .08), shape=S.MESH, params=(rng.uniform(0.1, 0.25), 0, 0, 0),
               two_sided=True)
    for _ in range(rng.integers(1, 4)):
        add_tree(b, rng, x_front + side * rng.uniform(2, 8), z + rng.uniform(0, width))


def add_tree(b: SceneBuilder, rng, x, z) -> None:
    """Add a trunk box and two crossed crown billboards (all labelled vegetation)."""
    trunk_h = rng.uniform(2.0, 4.0)
    trunk_w = rng.uniform(0.2, 0.45)
    b.box((x, CURB_HEIGHT_M, z), (trunk_w, trunk_h, trunk_w), T['vegetation'], S.TRUNK,
          np.array([0.35, 0.25, 0.18]) * rng.uniform(0.7, 1.2), top=False)
    crown = rng.uniform(2.5, 6.0)
    color = np.clip(np.array([0.2, 0.4, 0.12]) + rng.uniform(-0.07, 0.07, 3), 0, 1)
    y0 = CURB_HEIGHT_M + trunk_h - 0.3 * crown
    params = (rng.uniform(), rng.uniform(3, 7), 0, 0)
    b.rect((x - crown / 2, y0, z), (crown, 0, 0), (0, crown, 0), T['vegetation'], S.FOLIAGE, color,
           shape=S.DISC, params=params, two_sided=True)
    b.rect((x, y0, z - crown / 2), (0, 0, crown), (0, crown, 0), T['vegetation'], S.FOLIAGE, color,
           shape=S.DISC, params=(params[0] + 0.5, params[1], 0, 0), two_sided=True)
