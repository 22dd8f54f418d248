"""How chunk borders change the labels: a chunked run against the uninterrupted one.

``evs fleet`` labels a long bag in chunks, each from a fresh pipeline (its first frame is a
keyframe). :func:`border_study` runs a clip both ways with the same network and compares the
labels frame by frame: how many frames differ, the share of their pixels, and by how many frames
after a border the chunked run is back to the uninterrupted one's labels.
"""

from typing import Dict, List, Sequence

import numpy as np

from evs_ros.bags.chunks import keyframe_grid
from evs_ros.bags.network import PipelineLabeller
from evs_ros.config import EvsConfig


def label_clip(frames: Sequence[np.ndarray], config: EvsConfig, model, refiner,
               borders: Sequence[int] = (0,)) -> List[np.ndarray]:
    """Labels of every frame, a fresh pipeline starting at each border (0 = one pass)."""
    starts = sorted(set(borders) | {0})
    labels = []
    labeller = None
    for index, frame in enumerate(frames):
        if index in starts:
            labeller = PipelineLabeller(config, model, refiner)
        labels.append(labeller(frame, index)[0].copy())
    return labels


def grid_borders(count: int, chunk_frames: int, grid: int, offset: int = 0) -> List[int]:
    """Borders every ``chunk_frames`` frames rounded up to the keyframe grid, plus ``offset``
    (``offset`` != 0 puts them off the grid, for comparison)."""
    borders, step = [], 1
    while True:
        border = -(-step * chunk_frames // grid) * grid + offset
        if border >= count:
            return borders
        if border > 0:
            borders.append(border)
        step += 1


def compare(reference: Sequence[np.ndarray], chunked: Sequence[np.ndarray],
            borders: Sequence[int]) -> Dict[str, object]:
    """Frame-by-frame comparison of two label sequences (uint8 (H, W) each)."""
    differing = [float(np.mean(a != b)) for a, b in zip(reference, chunked)]
    changed = [i for i, value in enumerate(differing) if value > 0]
    ends = list(borders[1:]) + [len(reference)]
    recovery = []
    for border, end in zip(borders, ends):
        last_changed = max((i for i in changed if border <= i < end), default=None)
        recovery.append(0 if last_changed is None else last_changed - border + 1)
    return {
        'frames': len(reference), 'borders': list(borders),
        'frames_differing': len(changed),
        'pixels_differing_pct': round(100.0 * float(np.mean(differing)), 4),
        'pixels_differing_on_changed_frames_pct':
            round(100.0 * float(np.mean([differing[i] for i in changed])), 4) if changed else 0.0,
        'frames_after_border_until_identical': recovery,
    }


def border_study(frames: Sequence[np.ndarray], config: EvsConfig, model, refiner,
                 chunk_frames: int) -> Dict[str, object]:
    """The operating point of ``config`` chunked on the keyframe grid, and 1 frame off it."""
    reference = label_clip(frames, config, model, refiner)
    grid = keyframe_grid(config.operating_point)
    result = {'operating_point': config.operating_point.name, 'grid': grid,
              'chunk_frames': chunk_frames}
    for name, offset in (('on_grid', 0), ('off_grid', 1)):
        borders = grid_borders(len(frames), chunk_frames, grid, offset)
        chunked = label_clip(frames, config, model, refiner, borders)
        result[name] = compare(reference, chunked, [0] + borders)
    return result
