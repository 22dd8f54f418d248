"""Synthetic driving benchmark with exact ground truth (design §6; stands in for paper §4.1).

``render_snippet(SynthConfig(...))`` yields Cityscapes-like 30-frame, 17 Hz snippets of a
procedurally generated street seen from a moving car: per frame a BGR image, exact trainId labels,
the exact optical flow to the previous frame and a visibility mask. Everything is deterministic
by ``seed`` (numpy ``Generator`` only); the scene does not depend on the resolution.

Example::

    for frame in render_snippet(SynthConfig(width=512, height=256, seed=3)):
        cv2.imwrite('f.png', frame.image_bgr)
"""

from dataclasses import dataclass
from typing import Iterator, List, Tuple

import cv2
import numpy as np

from evs_ros.data.labels import TRAIN_ID
from evs_ros.data.synth_agents import random_scene
from evs_ros.data import synth_scene as S
from evs_ros.data.synth_lighting import GroundShadow, cloud_light
from evs_ros.data.synth_render import (SKY, Camera, exact_flow, look_rotation, rasterize,
                                       surface_points)
from evs_ros.data.synth_textures import shade_material, sky

FOCAL_PER_WIDTH = 1.105  # Cityscapes: fx = 2262.5 px at 2048 px width
GROUND_MATERIALS = (S.ROAD, S.SIDEWALK, S.TERRAIN)
MAX_WIDTH, MAX_HEIGHT = 2048, 1024


@dataclass(frozen=True)
class SynthConfig:
    """What to render; all distances in metres, angles in radians."""

    width: int = 1024
    height: int = 512
    num_frames: int = 30
    fps: float = 17.0
    seed: int = 0
    sensor_noise: bool = True
    motion_blur: bool = True
    lighting_changes: bool = True

    def __post_init__(self):
        if not (16 <= self.width <= MAX_WIDTH and 16 <= self.height <= MAX_HEIGHT):
            raise ValueError(f'resolution {self.width}x{self.height} must be within 16x16 and '
                             f'{MAX_WIDTH}x{MAX_HEIGHT}')
        if self.num_frames < 1 or self.fps <= 0:
            raise ValueError('num_frames must be >= 1 and fps > 0')


@dataclass
class SynthFrame:
    """One rendered frame.

    image_bgr: uint8 (H, W, 3). labels: uint8 (H, W) trainIds 0..18.
    flow_cur_to_prev: float32 (H, W, 2), pixel position in frame t-1 minus position in frame t
    (zeros for frame 0). valid: bool (H, W), True where the surface point was visible in frame
    t-1 (all False for frame 0).
    """

    image_bgr: np.ndarray
    labels: np.ndarray
    flow_cur_to_prev: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class _Look:
    """Per-snippet camera path, lighting and sensor parameters drawn from the seed."""

    speed: float
    lane_x: float
    height: float
    path: np.ndarray       # (7,) amplitudes / frequencies / phases of the wobble
    jitter: np.ndarray     # (num_frames, 3) per-frame yaw / pitch / roll jitter, radians
    sun: np.ndarray        # (3,) unit vector towards the sun
    sun_strength: float
    ambient: float
    tint: np.ndarray       # (3,) RGB gains
    exposure_wave: np.ndarray  # (3,) amplitude, period s, phase
    cloudiness: float
    cloud_shadow: float    # how much drifting clouds dim the sun, 0..1
    wind: np.ndarray       # (2,) cloud drift in x, z, m/s
    noise_sigma: float


def _draw_look(rng: np.random.Generator, config: SynthConfig, lane_x: float, speed: float):
    elevation, azimuth = rng.uniform(0.6, 1.35), rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                    np.cos(elevation) * np.cos(azimuth)])
    return _Look(
        speed=speed, lane_x=lane_x, height=rng.uniform(1.2, 1.6),
        path=np.array([rng.uniform(0.005, 0.03), rng.uniform(0.2, 0.8), rng.uniform(0, 6.3),
                       rng.uniform(-0.03, 0.01), rng.uniform(0.002, 0.008), rng.uniform(0.5, 2),
                       rng.uniform(0, 0.4)]),
        jitter=rng.normal(0, [0.0015, 0.0012, 0.001], (config.num_frames, 3)),
        sun=sun, sun_strength=rng.uniform(0.35, 0.75), ambient=rng.uniform(0.35, 0.6),
        tint=1 + rng.uniform(-0.07, 0.07, 3),
        exposure_wave=np.array([rng.uniform(0, 0.25) if config.lighting_changes else 0.0,
                                rng.uniform(1.0, 4.0), rng.uniform(0, 6.3)]),
        cloudiness=rng.uniform(0.1, 0.8),
        cloud_shadow=rng.uniform(0.2, 0.6) if config.lighting_changes and rng.random() < 0.5
        else 0.0, wind=rng.uniform(-8, 8, 2), noise_sigma=rng.uniform(1.0, 5.0))


def _camera(look: _Look, config: SynthConfig, index: int) -> Camera:
    time_s = index / config.fps
    amp, freq, phase, pitch0, pitch_amp, pitch_freq, lateral = look.path
    wave = np.sin(2 * np.pi * freq * time_s + phase)
    yaw = amp * wave + look.jitter[index, 0]
    pitch = pitch0 + pitch_amp * np.sin(2 * np.pi * pitch_freq * time_s) + look.jitter[index, 1]
    position = np.array([look.lane_x + lateral * wave, look.height, look.speed * time_s])
    focal = FOCAL_PER_WIDTH * config.width
    return Camera(position=position, rotation=look_rotation(yaw, pitch, look.jitter[index, 2]),
                  fx=focal, fy=focal, cx=(config.width - 1) / 2, cy=(config.height - 1) / 2)


def render_snippet(config: SynthConfig) -> Iterator[SynthFrame]:
    """Yield ``config.num_frames`` :class:`SynthFrame` of one snippet (see module docstring)."""
    rng = np.random.default_rng(config.seed)
    speed = rng.uniform(0.5, 13.0) if rng.random() > 0.1 else rng.uniform(0.0, 0.5)
    scene, layout = random_scene(rng, speed, config.num_frames / config.fps)
    look = _draw_look(rng, config, layout.camera_lane_x, speed)
    pixel_rng = np.random.default_rng([config.seed, config.width, config.height])
    lambert = _surface_lambert(scene, look)
    margin = layout.building_x + 30.0
    shadow = GroundShadow(scene.casters, look.sun, (-margin, margin),
                          (layout.z_start, layout.z_end))
    camera_prev, prim_prev = None, None
    for index in range(config.num_frames):
        camera = _camera(look, config, index)
        time_s = index / config.fps
        buffers = rasterize(scene, camera, config.width, config.height, time_s)
        labels = np.where(buffers.prim >= 0, scene.label[np.maximum(buffers.prim, 0)],
                          TRAIN_ID['sky']).astype(np.uint8)
        points = surface_points(scene, buffers, time_s)
        if camera_prev is None:
            flow = np.zeros((config.height, config.width, 2), np.float32)
            valid = np.zeros((config.height, config.width), bool)
        else:
            flow, valid = exact_flow(scene, buffers, time_s, 1.0 / config.fps, camera_prev,
                                     prim_prev, points)
        rgb = _shade(scene, buffers, points, time_s, (lambert, shadow), look, config.seed)
        image = _sensor(rgb, look, config, index, camera, camera_prev, pixel_rng)
        yield SynthFrame(image_bgr=image, labels=labels, flow_cur_to_prev=flow, valid=valid)
        camera_prev, prim_prev = camera, buffers.prim


def _surface_lambert(scene, look: _Look) -> np.ndarray:
    """Sun cosine (N,) per rectangle (objects only translate, so it is constant)."""
    normal = np.cross(scene.axis_u, scene.axis_v)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    cosine = normal @ look.sun
    return np.where(scene.two_sided, np.abs(cosine), np.maximum(cosine, 0.0))


def _pixel_light(material, points, prim, lambert, shadow, look: _Look, time_s, seed):
    """Light factor (n,) for n pixels of one material: ambient + shadowed, clouded sun."""
    x, z = points[:, 0], points[:, 2]
    sun = look.sun_strength * lambert[prim] * cloud_light(x, z, time_s, look.wind,
                                                          look.cloud_shadow, seed)
    if material in GROUND_MATERIALS:
        sun = sun * (1.0 - 0.85 * shadow.lookup(x, z))
    return (look.ambient + sun).astype(np.float32)


def _shade(scene, buffers, points, time_s, lighting, look: _Look, seed: int) -> np.ndarray:
    """Float RGB (H, W, 3) of a rasterised frame; ``lighting`` = (lambert, GroundShadow)."""
    lambert, shadow = lighting
    points = points.reshape(-1, 3)
    height, width = buffers.prim.shape
    rgb = np.empty((height, width, 3), np.float32)
    prim = buffers.prim.ravel()
    flat = rgb.reshape(-1, 3)
    is_sky = prim == SKY
    flat[is_sky] = sky(buffers.rays.reshape(-1, 3)[is_sky], seed, look.cloudiness)
    material = np.where(is_sky, -1, scene.material[np.maximum(prim, 0)])
    len_u = np.linalg.norm(scene.axis_u, axis=1)
    len_v = np.linalg.norm(scene.axis_v, axis=1)
    for kind in np.unique(material[~is_sky]):
        pixels = np.nonzero(material == kind)[0]
        p = prim[pixels]
        a, b = buffers.a.ravel()[pixels], buffers.b.ravel()[pixels]
        color = shade_material(kind, a, b, a * len_u[p], b * len_v[p], scene.color[p],
                               scene.params[p], len_u[p], len_v[p])
        light = _pixel_light(kind, points[pixels], p, lambert, shadow, look, time_s, seed)
        flat[pixels] = color * light[:, None]
    return rgb


def _sensor(rgb, look: _Look, config: SynthConfig, index, camera, camera_prev, pixel_rng):
    """Exposure drift, tint, motion blur and noise; returns uint8 BGR."""
    amplitude, period, phase = look.exposure_wave
    exposure = 1.0 + amplitude * np.sin(2 * np.pi * index / config.fps / period + phase)
    image = rgb * (look.tint * exposure).astype(np.float32) * 255.0
    if config.motion_blur and camera_prev is not None:
        image = _motion_blur(image, camera, camera_prev, config.width, pixel_rng)
    if config.sensor_noise:
        image += pixel_rng.normal(0, look.noise_sigma, image.shape).astype(np.float32)
    return cv2.cvtColor(np.clip(image + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _motion_blur(image, camera, camera_prev, width, pixel_rng):
    """Horizontal blur from the yaw rate, plus rare random shake (image only, labels stay)."""
    yaw_shift_px = abs(camera.rotation[0] @ camera_prev.rotation[2]) * camera.fx
    length = int(round(0.5 * yaw_shift_px))
    if pixel_rng.random() < 0.1:
        length += int(pixel_rng.integers(1, 4) * width / 1024) + 1
    if length < 2:
        return image
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


SPLIT_SEED_OFFSET = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}
"""Seed ranges of the dataset splits: snippet i of a split uses seed base + offset + i."""


def snippet_seed(split: str, base_seed: int, index: int) -> int:
    """Seed of snippet ``index`` of ``split`` (disjoint ranges per split up to 1e6 snippets)."""
    return base_seed + SPLIT_SEED_OFFSET[split] + index


def panning_frames(size_wh: Tuple[int, int], count: int, seed: int = 0) -> List[np.ndarray]:
    """Return gray uint8 (H, W) frames: a panning texture and a moving square.

    The texture pans 3 px/frame, the square moves 6 px/frame (flow and latency benchmarks: cheap to
    make at any size).
    """
    width, height = size_wh
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur((rng.random((height + 4 * count, width + 4 * count)) * 255)
                              .astype(np.uint8), (0, 0), 2.0)
    side = max(8, min(width, height) // 4)
    square = cv2.GaussianBlur((rng.random((side, side)) * 255).astype(np.uint8), (0, 0), 1.0)
    frames = []
    for index in range(count):
        frame = canvas[index:index + height, 3 * index:3 * index + width].copy()
        left = (width // 4 + 6 * index) % max(1, width - side)
        frame[height // 3:height // 3 + side, left:left + side] = square
        frames.append(frame)
    return frames
