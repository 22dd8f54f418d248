"""Street furniture and traffic for the synthetic benchmark (design §6).

Thin objects (poles, traffic signs and lights) and independently moving ones (cars, trucks,
buses, trams, pedestrians, riders on bicycles and motorcycles) are where label propagation fails
in the paper (§4.3, Fig. 5), so the generator places plenty of them near the camera path.
"""

import numpy as np

from evs_ros.data import synth_scene as S
from evs_ros.data.labels import TRAIN_ID as T
from evs_ros.data.synth_scene import SceneBuilder
from evs_ros.data.synth_street import CURB_HEIGHT_M, StreetLayout, _vivid, add_tree

PERSON_H_M = 1.75


def add_sidewalk_furniture(b: SceneBuilder, rng, lay: StreetLayout) -> None:
    """Poles (with signs or traffic lights) and trees along both curbs."""
    for side in (-1, 1):
        z = lay.z_start + rng.uniform(0, 10)
        while z < lay.z_end - 10:
            x = side * (lay.road_half_width + rng.uniform(0.4, 0.9))
            roll = rng.random()
            if roll < 0.35:
                _add_pole(b, rng, x, z, side, lay)
            elif roll < 0.75:
                add_tree(b, rng, x + side * rng.uniform(0.3, 1.2), z)
            z += rng.uniform(6, 20)


def _add_pole(b, rng, x, z, side, lay):
    pole_w = rng.uniform(0.08, 0.22)
    height = rng.uniform(2.8, 8.0)
    grey = np.full(3, rng.uniform(0.3, 0.65))
    b.box((x, CURB_HEIGHT_M, z), (pole_w, height, pole_w), T['pole'], S.METAL, grey, top=False)
    if rng.random() < 0.6:  # traffic sign facing oncoming traffic (the camera)
        size = rng.uniform(0.5, 0.9)
        kind = rng.integers(5)
        shape = (S.CIRCLE, S.CIRCLE, S.TRIANGLE, S.DIAMOND, S.SOLID)[kind]
        y = CURB_HEIGHT_M + min(height - size, rng.uniform(1.8, 2.8))
        b.rect((x - size / 2, y, z - pole_w), (size, 0, 0), (0, size, 0), T['traffic sign'],
               S.SIGN, (1, 1, 1), shape=shape, params=(kind, 0, 0, 0), two_sided=True)
    if height > 4.0 and rng.random() < 0.5:  # traffic light, sometimes on an arm over the road
        arm = rng.uniform(1.5, lay.road_half_width * 0.8) if rng.random() < 0.5 else 0.0
        top = CURB_HEIGHT_M + height
        if arm > 0:
            b.box((x - side * arm / 2, top - 0.15, z), (arm, 0.12, 0.12), T['pole'], S.METAL,
                  grey)
        _add_traffic_light(b, rng, x - side * arm, top - 0.2 - 0.9, z - pole_w)


def _add_traffic_light(b, rng, x, y, z):
    housing = np.array([0.12, 0.12, 0.1]) if rng.random() < 0.6 else np.array([0.6, 0.5, 0.1])
    b.box((x, y, z), (0.32, 0.9, 0.25), T['traffic light'], S.LIGHT, housing,
          params=(rng.integers(3), 0, 0, 0))


def add_vehicle(b: SceneBuilder, rng, x, z, velocity, kind=None) -> None:
    """Add a car, truck, bus or tram (label by kind) centred at (x, z), length along z."""
    kind = kind or rng.choice(['car'] * 12 + ['truck', 'bus'])
    obj = b.new_object(velocity) if np.any(velocity) else 0
    color = _vivid(rng)
    if kind == 'car':
        length, width = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9)
        b.box((x, 0.25, z), (width, 0.75, length), T['car'], S.VEHICLE, color, (0, 0, 0, 0), obj)
        b.box((x, 1.0, z - rng.uniform(-0.3, 0.3)), (width * 0.9, rng.uniform(0.45, 0.6),
              length * rng.uniform(0.5, 0.65)), T['car'], S.VEHICLE, color, (1, 0, 0, 0), obj)
        _add_wheels(b, x, z, width, length, T['car'], obj)
    elif kind == 'truck':
        length, width = rng.uniform(6, 9), 2.4
        b.box((x, 0.45, z + length / 2 - 1.0), (width, 2.2, 2.0), T['truck'], S.VEHICLE, color,
              (1, 0, 0, 0), obj)
        b.box((x, 0.9, z - 1.0), (width, rng.uniform(2.4, 3.0), length - 2.1), T['truck'],
              S.VEHICLE, _vivid(rng), (3, 0, 0, 0), obj)
        _add_wheels(b, x, z, width, length, T['truck'], obj)
    else:  # bus or tram ('train' in Cityscapes)
        length = rng.uniform(10, 12) if kind == 'bus' else rng.uniform(20, 30)
        b.box((x, 0.35, z), (2.55, 2.9, length), T[kind], S.VEHICLE, color, (2, 0, 0, 0), obj)
        if kind == 'bus':
            _add_wheels(b, x, z, 2.55, length, T['bus'], obj)


def _add_wheels(b, x, z, width, length, label, obj):
    dark = (0.05, 0.05, 0.05)
    for dz in (-0.33 * length, 0.33 * length):
        b.box((x, 0.0, z + dz), (width * 0.95, 0.55, 0.6), label, S.VEHICLE, dark, (4, 0, 0, 0),
              obj, top=False)


def add_person(b: SceneBuilder, rng, x, y, z, velocity, label=T['person'], across=True,
               seated=False, obj=None) -> None:
    """Add a walking (or seated rider) billboard; ``across`` = plane x-y (faces the camera).

    The billboard's axis_u points in the walking direction, so riders lean the right way.
    """
    obj = b.new_object(velocity) if obj is None else obj
    height = PERSON_H_M * rng.uniform(0.85, 1.1) * (0.8 if seated else 1.0)
    width = 0.45 * height
    shirt = _vivid(rng)
    params = (rng.uniform(), np.linalg.norm(velocity) * 0.7, rng.integers(6), 0)
    sign = -1.0 if (velocity[0] if across else velocity[2]) < 0 else 1.0
    axis_u = (sign * width, 0, 0) if across else (0, 0, sign * width)
    origin = (x - sign * width / 2, y, z) if across else (x, y, z - sign * width / 2)
    b.rect(origin, axis_u, (0, height, 0), label, S.PERSON, shirt,
           shape=S.SEATED if seated else S.WALKER, params=params, two_sided=True, obj=obj)


def add_rider(b: SceneBuilder, rng, x, z, velocity, motorcycle=False) -> None:
    """Add a rider on a bicycle or motorcycle, crossing (side view) or along the street."""
    obj = b.new_object(velocity)
    crossing = abs(velocity[0]) > abs(velocity[2])
    label = T['motorcycle'] if motorcycle else T['bicycle']
    frame_color = _vivid(rng) * 0.6
    if crossing:
        length, height = (2.0, 1.1) if motorcycle else (1.75, 1.0)
        sign = -1.0 if velocity[0] < 0 else 1.0
        b.rect((x - sign * length / 2, 0, z), (sign * length, 0, 0), (0, height, 0), label,
               S.CYCLE, frame_color, shape=S.MOTO_SIDE if motorcycle else S.BIKE_SIDE,
               two_sided=True, obj=obj)
    else:
        width = 0.7 if motorcycle else 0.55
        b.rect((x - width / 2, 0, z + 0.3), (width, 0, 0), (0, 1.05, 0), label, S.CYCLE,
               frame_color, shape=S.CYCLE_REAR, two_sided=True, obj=obj)
    add_person(b, rng, x, 0.75, z - 0.01, velocity, label=T['rider'], seated=True, obj=obj)


def add_traffic(b: SceneBuilder, rng, lay: StreetLayout, camera_speed: float,
                duration_s: float) -> None:
    """Parked and moving vehicles, pedestrians and riders near the camera's path."""
    travel = camera_speed * duration_s
    w = lay.road_half_width
    lane = lay.camera_lane_x
    if w >= 5.5:  # parking lanes
        for side in (-1, 1):
            z = lay.z_start + rng.uniform(0, 6)
            while z < 120:
                if rng.random() < 0.6:
                    add_vehicle(b, rng, side * (w - 1.1), z, np.zeros(3))
                z += rng.uniform(5.5, 14)
    for _ in range(rng.integers(2, 7)):  # oncoming traffic
        add_vehicle(b, rng, -lane + rng.uniform(-0.3, 0.3), rng.uniform(15, 140),
                    np.array([0, 0, -rng.uniform(5, 14)]))
    for _ in range(rng.integers(0, 3)):  # same direction, ahead of the camera
        speed = camera_speed + rng.uniform(-2, 4)
        add_vehicle(b, rng, lane + rng.uniform(-0.2, 0.2), rng.uniform(12, 60) + travel,
                    np.array([0, 0, max(speed, 0.0)]), kind=rng.choice(['car'] * 4 + ['truck']))
    if rng.random() < 0.15:
        add_vehicle(b, rng, -lane, rng.uniform(40, 120), np.array([0, 0, -rng.uniform(3, 9)]),
                    kind='train')
    _add_pedestrians(b, rng, lay, travel)
    _add_riders(b, rng, lay, travel)


def _add_pedestrians(b, rng, lay, travel):
    w = lay.road_half_width
    for _ in range(rng.integers(3, 12)):  # along the sidewalks
        side = rng.choice([-1, 1])
        x = side * (w + rng.uniform(0.8, lay.sidewalk_width))
        speed = rng.uniform(0.8, 1.8) * rng.choice([-1, 1])
        add_person(b, rng, x, CURB_HEIGHT_M, rng.uniform(4, 70), np.array([0, 0, speed]),
                   across=rng.random() < 0.5)
    for _ in range(rng.integers(0, 5)):  # crossing the road ahead of the camera
        speed = rng.uniform(0.8, 2.0) * rng.choice([-1, 1])
        add_person(b, rng, rng.uniform(-w - 1, w + 1), 0.0, travel + rng.uniform(8, 40),
                   np.array([speed, 0, 0]))


def _add_riders(b, rng, lay, travel):
    lane = lay.camera_lane_x
    for _ in range(rng.integers(1, 4)):
        motorcycle = rng.random() < 0.35
        if rng.random() < 0.5:  # crossing
            speed = rng.uniform(2.5, 6) * rng.choice([-1, 1])
            add_rider(b, rng, rng.uniform(-lane * 2, lane * 2), travel + rng.uniform(8, 45),
                      np.array([speed, 0, 0]), motorcycle)
        else:  # along the right edge of the road, ahead of the camera
            add_rider(b, rng, lane + rng.uniform(0.8, 1.5), travel * 0.6 + rng.uniform(5, 40),
                      np.array([0, 0, rng.uniform(3, 8)]), motorcycle)


def random_scene(rng: np.random.Generator, camera_speed: float, duration_s: float):
    """Draw a complete street; returns (Scene, StreetLayout)."""
    from evs_ros.data.synth_street import add_buildings, add_ground, random_layout
    layout = random_layout(rng, camera_speed * duration_s)
    builder = SceneBuilder()
    add_ground(builder, rng, layout)
    add_buildings(builder, rng, layout)
    add_sidewalk_furniture(builder, rng, layout)
    add_traffic(builder, rng, layout, camera_speed, duration_s)
    return builder.build(), layout
