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
               borders: Sequence[int] = (0,), warmup: int = 0) -> List[np.ndarray]:
    """Labels of every frame, a fresh pipeline for each chunk (0 = one pass).

    Each chunk's pipeline starts ``warmup`` frames before its border and its labels there are
    dropped.
    """
    starts = sorted(set(borders) | {0})
    ends = starts[1:] + [len(frames)]
    labels = []
    for start, end in zip(starts, ends):
        labeller = PipelineLabeller(config, model, refiner)
        for index in range(max(0, start - warmup), end):
            result = labeller(frames[index], index)[0]
            if index >= start:
                labels.append(result.copy())
    return labels


def grid_borders(count: int, chunk_frames: int, grid: int, offset: int = 0) -> List[int]:
    """Return borders every ``chunk_frames`` frames rounded up to the keyframe grid.

    Plus ``offset`` (``offset`` != 0 puts them off the grid, for comparison).
    """
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
                 chunk_frames: int, warmups: Sequence[int] = ()) -> Dict[str, object]:
    """Chunk the operating point of ``config`` on the keyframe grid, 1 frame off it, and so on.

    On the grid with each warm-up of ``warmups`` too (frames labelled before the border and
    dropped).
    """
    reference = label_clip(frames, config, model, refiner)
    grid = keyframe_grid(config.operating_point)
    result = {'operating_point': config.operating_point.name, 'grid': grid,
              'chunk_frames': chunk_frames}
    on_grid = grid_borders(len(frames), chunk_frames, grid)
    off_grid = grid_borders(len(frames), chunk_frames, grid, 1)
    cases = [('on_grid', on_grid, 0), ('off_grid', off_grid, 0)]
    cases += [(f'on_grid_warmup_{warmup}', on_grid, warmup) for warmup in warmups]
    for name, cut, warmup in cases:
        chunked = label_clip(frames, config, model, refiner, cut, warmup)
        result[name] = dict(compare(reference, chunked, [0] + cut), warmup=warmup)
    return result
