"""Analytic alpha shapes of billboards: people, riders, cycles, tree crowns, signs, fences.

Each function takes the rectangle coordinates ``a, b`` (float arrays in [0, 1], b = 0 at the
bottom), the rectangle size in metres and its parameters, and returns a bool array: True where
the surface exists. Walking legs swing with time, which makes people non-rigid: pixels that were
background one frame earlier become person (and vice versa), like real disocclusions.
"""

import numpy as np

from evs_ros.data import synth_scene as S


def segment_distance(x, y, p0, p1):
    """Distance (same unit as inputs) of points (x, y) from the segment p0-p1."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy
    t = np.clip(((x - p0[0]) * dx + (y - p0[1]) * dy) / length2, 0.0, 1.0)
    return np.hypot(x - p0[0] - t * dx, y - p0[1] - t * dy)


def _any_segment(x, y, segments, radius):
    hit = np.zeros(x.shape, bool)
    for p0, p1 in segments:
        hit |= segment_distance(x, y, p0, p1) < radius
    return hit


def _walker(x, y, phase):
    swing = 0.1 * np.sin(phase)
    arm = 0.07 * np.sin(phase)
    head = np.hypot(x, (y - 0.92) * 0.9) < 0.065
    torso = (np.abs(x) < 0.095 - 0.02 * (0.84 - y)) & (y > 0.5) & (y < 0.85)
    limbs = _any_segment(x, y, [((-0.04, 0.5), (-0.04 + swing, 0.02)),
                                ((0.04, 0.5), (0.04 - swing, 0.02))], 0.035)
    limbs |= _any_segment(x, y, [((-0.1, 0.82), (-0.11 - arm, 0.5)),
                                 ((0.1, 0.82), (0.11 + arm, 0.5))], 0.025)
    return head | torso | limbs


def _seated(x, y):
    head = np.hypot(x - 0.03, (y - 0.9) * 0.9) < 0.075
    torso = _any_segment(x, y, [((0.0, 0.35), (0.04, 0.8))], 0.085)
    limbs = _any_segment(x, y, [((0.0, 0.35), (0.16, 0.3)), ((0.16, 0.3), (0.14, 0.0)),
                                ((0.05, 0.78), (0.22, 0.5))], 0.04)
    return head | torso | limbs


BIKE_FRAME = [((0.4, 0.34), (0.85, 0.3)), ((0.85, 0.3), (0.75, 0.8)), ((0.75, 0.8), (1.2, 0.82)),
              ((1.2, 0.82), (1.35, 0.34)), ((0.85, 0.3), (1.2, 0.82)), ((0.4, 0.34), (0.75, 0.8)),
              ((1.2, 0.82), (1.15, 0.97)), ((0.65, 0.85), (0.85, 0.85))]


def _bike_side(x, y):
    rings = np.zeros(x.shape, bool)
    for cx in (0.4, 1.35):
        radius = np.hypot(x - cx, y - 0.34)
        rings |= (np.abs(radius - 0.32) < 0.03) | (radius < 0.04)
    return rings | _any_segment(x, y, BIKE_FRAME, 0.022)


def _moto_side(x, y):
    wheels = (np.hypot(x - 0.4, y - 0.3) < 0.3) | (np.hypot(x - 1.6, y - 0.3) < 0.3)
    body = ((x - 1.0) / 0.6) ** 2 + ((y - 0.6) / 0.22) ** 2 < 1
    bars = _any_segment(x, y, [((1.45, 0.45), (1.55, 1.0)), ((1.45, 1.0), (1.7, 1.02))], 0.04)
    return wheels | body | bars


def _cycle_rear(x, y, width):
    center = width / 2
    tire = 0.03 if width < 0.6 else 0.07
    wheel = (np.abs(x - center) < tire) & (y < 0.68)
    bar = (np.abs(y - 0.95) < 0.03) & (np.abs(x - center) < width / 2 - 0.02)
    stem = (np.abs(x - center) < 0.025) & (y < 0.95)
    return wheel | bar | stem


def _mesh(s, t, size_v, spacing):
    wire = 0.045
    diamond = (np.mod(s + t, spacing) < wire) | (np.mod(s - t, spacing) < wire)
    posts = np.mod(s, 2.5) < 0.08
    rails = (t > size_v - 0.06) | (t < 0.05)
    return diamond | posts | rails


def _disc(a, b, params):
    dx, dy = 2 * a - 1, 2 * b - 1
    angle = np.arctan2(dy, dx)
    lobes = params[1]
    phase = params[0] * 2 * np.pi
    radius = 0.82 + 0.1 * np.sin(lobes * angle + phase) + 0.06 * np.sin(2.7 * lobes * angle)
    return dx * dx + dy * dy < radius * radius


def alpha_mask(shape: int, a: np.ndarray, b: np.ndarray, size_u: float, size_v: float,
               params: np.ndarray, time_s: float) -> np.ndarray:
    """Return bool array (same shape as ``a``): where the billboard ``shape`` is opaque."""
    if shape == S.DISC:
        return _disc(a, b, params)
    if shape == S.WALKER:
        phase = 2 * np.pi * (params[0] + params[1] * time_s)
        return _walker((a - 0.5) * size_u / size_v, b, phase)
    if shape == S.SEATED:
        return _seated((a - 0.5) * size_u / size_v, b)
    s, t = a * size_u, b * size_v
    if shape == S.BIKE_SIDE:
        return _bike_side(s, t)
    if shape == S.MOTO_SIDE:
        return _moto_side(s, t)
    if shape == S.CYCLE_REAR:
        return _cycle_rear(s, t, size_u)
    if shape == S.MESH:
        return _mesh(s, t, size_v, params[0])
    if shape == S.CIRCLE:
        return (a - 0.5) ** 2 + (b - 0.5) ** 2 < 0.25
    if shape == S.TRIANGLE:
        return (b > 0.05) & (np.abs(a - 0.5) < (0.95 - b) * 0.55)
    if shape == S.DIAMOND:
        return np.abs(a - 0.5) + np.abs(b - 0.5) < 0.5
    return np.ones(a.shape, bool)
