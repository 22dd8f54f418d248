"""Procedural surface textures and sky of the synthetic benchmark (design §6).

Textures are functions of the surface coordinates in metres (``s`` along axis_u, ``t`` along
axis_v), so they stick to surfaces and move with them (what optical flow needs). Classes get
distinct but overlapping looks: greys for road, sidewalk, walls and poles, greens for terrain
and vegetation, random paints for vehicles and clothes.
"""

import numpy as np

from evs_ros.data import synth_scene as S


def hash01(ix: np.ndarray, iy: np.ndarray, salt: int = 0) -> np.ndarray:
    """Deterministic pseudo-random float32 in [0, 1) per integer cell (ix, iy)."""
    h = (ix.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)) ^ \
        (iy.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)) ^ \
        np.uint32((salt * 0xCB1AB31F) & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) / np.float32(1 << 24)


def value_noise(x: np.ndarray, y: np.ndarray, salt: int = 0) -> np.ndarray:
    """Smooth value noise in [0, 1) at unit cell size."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = hash01(x0, y0, salt) * (1 - fx) + hash01(x0 + 1, y0, salt) * fx
    bottom = hash01(x0, y0 + 1, salt) * (1 - fx) + hash01(x0 + 1, y0 + 1, salt) * fx
    return top * (1 - fy) + bottom * fy


def _mix(base, other, weight):
    return base * (1 - weight[:, None]) + np.asarray(other) * weight[:, None]


def _road(s, t, color, params, length_u):
    shade = 0.85 + 0.25 * value_noise(s * 0.7, t * 0.7, 1) + 0.12 * (hash01(s * 20, t * 20) - .5)
    rgb = color * shade[:, None]
    parking, crossing = params[:, 0], params[:, 2]
    center = np.abs(s - length_u / 2) < 0.08
    dashed = center & (np.mod(t, 9.0) < 4.0)
    edge = (np.abs(s - parking - 0.2) < 0.07) | (np.abs(length_u - parking - 0.2 - s) < 0.07)
    zebra = (np.abs(t - crossing - 2) < 2) & (np.mod(s, 1.0) < 0.5)
    marking = (dashed | edge | zebra).astype(np.float32) * (0.7 + 0.2 * hash01(s * 8, t * 8, 2))
    return _mix(rgb, (0.85, 0.85, 0.82), marking)


def _sidewalk(s, t, color, params):
    tile = 0.4
    grout = (np.mod(s, tile) < 0.025) | (np.mod(t, tile) < 0.025)
    jitter = 0.85 + 0.25 * hash01(s / tile, t / tile, 3) + 0.08 * (hash01(s * 30, t * 30) - 0.5)
    rgb = color * jitter[:, None]
    return np.where(grout[:, None], rgb * 0.7, rgb)


def _terrain(s, t, color):
    patch = value_noise(s * 0.6, t * 0.6, 4)
    grain = hash01(s * 25, t * 25, 5)
    rgb = _mix(color, (0.45, 0.38, 0.25), 0.6 * patch ** 2)
    return rgb * (0.75 + 0.35 * grain)[:, None]


def _facade(s, t, color, params):
    floor_h, spacing = params[:, 0], params[:, 2]
    cell_s, cell_t = np.floor(s / spacing), np.floor(t / floor_h)
    fs, ft = np.mod(s, spacing) / spacing, np.mod(t, floor_h) / floor_h
    window = (np.abs(fs - 0.5) < 0.28) & (ft > 0.3) & (ft < 0.82)
    lit = hash01(cell_s, cell_t, 6)
    glass = np.stack([0.15 + 0.3 * lit, 0.18 + 0.3 * lit, 0.22 + 0.25 * lit], 1)
    glass *= (lit > 0.85)[:, None] * 1.8 + 1.0
    stains = 0.8 + 0.3 * value_noise(s * 0.3, t * 0.5, 7) + 0.1 * (hash01(s * 15, t * 15) - .5)
    wall = color * stains[:, None]
    frame = (np.abs(fs - 0.5) < 0.32) & (ft > 0.25) & (ft < 0.86) & ~window
    wall = np.where(frame[:, None], wall * 0.8, wall)
    return np.where(window[:, None], glass, wall)


def _wall(s, t, color, params):
    course = params[:, 0]
    joint = np.mod(t, course) < 0.03
    block = 0.85 + 0.25 * hash01(np.floor(s / 0.8 + 0.5 * np.floor(t / course)), t / course, 8)
    rgb = color * (block + 0.1 * (hash01(s * 25, t * 25) - 0.5))[:, None]
    return np.where(joint[:, None], rgb * 0.65, rgb)


def _person(t_rel, color, params):
    skin_tones = np.array([(0.9, 0.75, 0.6), (0.7, 0.5, 0.35), (0.45, 0.3, 0.2)])
    pants = np.array([(0.1, 0.1, 0.15), (0.2, 0.25, 0.45), (0.4, 0.35, 0.3), (0.15, 0.15, 0.1),
                      (0.5, 0.5, 0.5), (0.3, 0.1, 0.1)])
    variant = params[:, 2].astype(int)
    rgb = np.where((t_rel > 0.52)[:, None], color, pants[variant % len(pants)])
    return np.where((t_rel > 0.84)[:, None], skin_tones[variant % 3], rgb)


def _vehicle(a, b, s, t, color, params):
    part, face = params[:, 0], params[:, 1]
    shine = 0.9 + 0.15 * value_noise(s * 0.5, t * 2, 9)
    rgb = color * shine[:, None]
    side, ends = face == 0, face == 1
    cabin_window = (part == 1) & (face < 2) & (b > 0.12) & (b < 0.9) & (a > 0.06) & (a < 0.94)
    band_window = (part == 2) & (b > 0.55) & (b < 0.88) & (np.mod(s, 1.6) > 0.15)
    tail = (part == 0) & ends & (b > 0.55) & (b < 0.8) & ((a < 0.15) | (a > 0.85))
    plate = (part == 0) & ends & (b > 0.2) & (b < 0.4) & (np.abs(a - 0.5) < 0.15)
    glass = np.array([0.1, 0.12, 0.15]) + 0.15 * value_noise(s * 2, t * 2, 10)[:, None]
    rgb = np.where((cabin_window | band_window)[:, None], glass, rgb)
    rgb = np.where(tail[:, None], np.array([0.8, 0.1, 0.05]), rgb)
    rgb = np.where(plate[:, None], np.array([0.9, 0.9, 0.88]), rgb)
    return np.where(((part == 4) & side)[:, None], rgb * 0.6, rgb)


SIGN_FACES = np.array([(0.9, 0.1, 0.1), (0.1, 0.25, 0.75), (0.95, 0.95, 0.95), (0.95, 0.8, 0.1),
                       (0.1, 0.35, 0.7)])


def _sign(a, b, params):
    kind = params[:, 0].astype(int)
    rgb = SIGN_FACES[kind].copy()
    rim = np.hypot(a - 0.5, b - 0.5) < 0.36
    rgb[(kind == 0) & rim] = (0.95, 0.95, 0.95)
    glyph = (np.abs(a - 0.5) < 0.25) & (np.abs(b - 0.5) < 0.06)
    rgb[(kind != 0) & glyph] = (0.1, 0.1, 0.1)
    return rgb


def _light(a, b, color, params):
    rgb = np.broadcast_to(color, (len(a), 3)).copy()
    active = params[:, 0].astype(int)
    lamp_colors = np.array([(1.0, 0.15, 0.1), (1.0, 0.7, 0.1), (0.2, 1.0, 0.4)])
    for lamp, height in enumerate((0.8, 0.5, 0.2)):
        inside = np.hypot((a - 0.5) * 0.35, (b - height) * 0.9) < 0.11
        on = inside & (active == lamp)
        rgb[inside] = 0.15
        rgb[on] = lamp_colors[lamp]
    return rgb


def shade_material(material, a, b, s, t, color, params, length_u, length_v):
    """RGB float (n, 3) in ~[0, 1] for n pixels of one material (arrays of length n)."""
    if material == S.ROAD:
        return _road(s, t, color, params, length_u)
    if material in (S.SIDEWALK,):
        return _sidewalk(s, t, color, params)
    if material == S.TERRAIN:
        return _terrain(s, t, color)
    if material == S.FACADE:
        return _facade(s, t, color, params)
    if material == S.WALL:
        return _wall(s, t, color, params)
    if material == S.PERSON:
        return _person(b, color, params)
    if material == S.VEHICLE:
        return _vehicle(a, b, s, t, color, params)
    if material == S.SIGN:
        return _sign(a, b, params)
    if material == S.LIGHT:
        return _light(a, b, color, params)
    if material == S.FOLIAGE:
        leaves = 0.55 + 0.45 * value_noise(s * 4, t * 4, 11) + 0.3 * (hash01(s * 18, t * 18) - .5)
        return color * leaves[:, None]
    if material == S.TRUNK:
        return color * (0.8 + 0.3 * hash01(s * 30, t * 3, 12))[:, None]
    if material == S.METAL:
        return color * (0.7 + 0.35 * np.sin(np.pi * a) + 0.05 * hash01(s * 40, t * 40))[:, None]
    return color * (0.85 + 0.3 * hash01(s * 20, t * 20, 13))[:, None]


def sky(rays: np.ndarray, seed: int, cloudiness: float) -> np.ndarray:
    """RGB float (n, 3) for world ray directions (n, 3): gradient plus clouds at infinity."""
    norm = np.linalg.norm(rays, axis=1)
    elevation = np.clip(rays[:, 1] / norm, 0.0, 1.0)
    horizon, zenith = np.array([0.78, 0.82, 0.86]), np.array([0.3, 0.5, 0.85])
    rgb = _mix(horizon, zenith, np.clip(elevation * 2.5, 0, 1))
    height = np.maximum(rays[:, 1] / norm, 0.03)
    u, v = rays[:, 0] / norm / height, rays[:, 2] / norm / height
    cloud = value_noise(u * 1.5, v * 1.5, seed) * 0.65 + value_noise(u * 5, v * 5, seed + 1) * 0.35
    cover = np.clip((cloud - (1 - cloudiness)) * 3, 0, 1)
    return _mix(rgb, (0.92, 0.92, 0.93), cover)
