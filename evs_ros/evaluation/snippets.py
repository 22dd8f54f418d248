"""Annotated snippets held in memory: synthetic (rendered on the fly) or Cityscapes layout.

The paper evaluates the 20th frame of each 30-frame Cityscapes snippet (§4.1); an
:class:`EvalSnippet` holds the frames and the ground truth of that annotated frame.
"""

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np


@dataclass
class EvalSnippet:
    """One snippet held in memory.

    Attributes:
        name: identifier for reports (``city_seq`` or ``synth_seed``).
        frames: uint8 (H, W, 3) BGR frames in time order.
        gt_labels: uint8 (H, W) trainIds of ``frames[annotated_index]`` (255 = ignore).
        annotated_index: the evaluated frame (19 = the paper's 20th frame).
    """

    name: str
    frames: List[np.ndarray]
    gt_labels: np.ndarray
    annotated_index: int = 19


def synthetic_snippets(seeds: Iterable[int], size_wh: Tuple[int, int],
                       num_frames: int = 30) -> Iterator[EvalSnippet]:
    """Render snippets of the synthetic benchmark on the fly (``evs_ros.data.synth``)."""
    from evs_ros.data.synth import SynthConfig, render_snippet
    for seed in seeds:
        config = SynthConfig(width=size_wh[0], height=size_wh[1], num_frames=num_frames,
                             seed=int(seed))
        rendered = list(render_snippet(config))
        annotated = min(19, num_frames - 1)
        yield EvalSnippet(name=f'synth_{seed}', frames=[f.image_bgr for f in rendered],
                          gt_labels=rendered[annotated].labels, annotated_index=annotated)


def cityscapes_snippets(root: str, split: str, size_wh: Optional[Tuple[int, int]] = None,
                        limit: Optional[int] = None) -> Iterator[EvalSnippet]:
    """Read annotated snippets of a Cityscapes-layout dataset (real or ``evs synth``).

    Snippets without ground truth on their annotated frame are skipped. With ``size_wh``
    (width, height) frames are resized with INTER_AREA and labels with INTER_NEAREST.
    """
    from evs_ros.data.cityscapes import list_snippets, read_image, read_labels
    count = 0
    for snippet in list_snippets(root, split):
        index = snippet.annotated_index
        if index not in snippet.labels or (limit is not None and count >= limit):
            continue
        frames = [_resize(read_image(path), size_wh, cv2.INTER_AREA) for path in snippet.frames]
        labels = _resize(read_labels(snippet.labels[index]), size_wh, cv2.INTER_NEAREST)
        count += 1
        yield EvalSnippet(name=f'{snippet.city}_{snippet.seq:06d}', frames=frames,
                          gt_labels=labels, annotated_index=index)


def _resize(image: np.ndarray, size_wh, interpolation) -> np.ndarray:
    if size_wh is None or tuple(size_wh) == (image.shape[1], image.shape[0]):
        return image
    return cv2.resize(image, tuple(int(v) for v in size_wh), interpolation=interpolation)


SYNTH_TEST_SPLIT = 'test'
"""Synthetic snippets for evaluation come from the held-out split (never trained on)."""


def snippet_source(data_root: Optional[str] = None, split: str = 'val', synth_count: int = 0,
                   synth_seed: int = 0, max_snippets: Optional[int] = None,
                   size_wh: Optional[Tuple[int, int]] = None):
    """Annotated snippets of a dataset (``data_root``) or ``synth_count`` synthetic ones.

    Returns:
        (snippet iterator, expected count, JSON description of the data).
    """
    if data_root:
        from evs_ros.data.cityscapes import list_snippets
        count = sum(s.annotated_index in s.labels for s in list_snippets(data_root, split))
        count = count if max_snippets is None else min(count, max_snippets)
        described = {'kind': 'cityscapes_layout', 'root': os.path.abspath(data_root),
                     'split': split}
        return cityscapes_snippets(data_root, split, size_wh, max_snippets), count, described
    from evs_ros.data.synth import snippet_seed
    count = synth_count if max_snippets is None else min(synth_count, max_snippets)
    if count < 1:
        raise ValueError('give --data ROOT or --synth-snippets N')
    seeds = [snippet_seed(SYNTH_TEST_SPLIT, synth_seed, i) for i in range(count)]
    described = {'kind': 'synthetic', 'split': SYNTH_TEST_SPLIT, 'seeds': seeds}
    return synthetic_snippets(seeds, size_wh), count, described


def labelled_clips(data_root: Optional[str], split: str, count: int, synth_seed: int = 0,
                   size_wh: Optional[Tuple[int, int]] = None) -> Iterator[tuple]:
    """``count`` clips with ground truth on every frame: (name, frames, labels) each.

    From a Cityscapes-layout dataset whose snippets are labelled on every frame (``evs synth``
    writes them so), else rendered synthetic test snippets.
    """
    if not data_root:
        from evs_ros.data.synth import SynthConfig, render_snippet, snippet_seed
        width, height = size_wh or (2048, 1024)
        for index in range(count):
            seed = snippet_seed(SYNTH_TEST_SPLIT, synth_seed, index)
            rendered = list(render_snippet(SynthConfig(width=width, height=height, seed=seed)))
            yield f'synth_{seed}', [f.image_bgr for f in rendered], [f.labels for f in rendered]
        return
    from evs_ros.data.cityscapes import list_snippets, read_image, read_labels
    full = [s for s in list_snippets(data_root, split) if len(s.labels) == len(s.frames)]
    if not full:
        raise ValueError(f'{data_root} ({split}) has no snippet labelled on every frame; '
                         'render one with `evs synth`')
    for snippet in full[:count]:
        frames = [_resize(read_image(p), size_wh, cv2.INTER_AREA) for p in snippet.frames]
        labels = [_resize(read_labels(snippet.labels[i]), size_wh, cv2.INTER_NEAREST)
                  for i in range(len(snippet.frames))]
        yield f'{snippet.city}_{snippet.seq:06d}', frames, labels
