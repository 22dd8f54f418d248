"""Annotated snippets held in memory, and how their predictions are scored.

Two protocols:

- **One annotated frame** (Cityscapes, paper §4.1): the 20th frame of a 30-frame snippet is
  labelled; every operating point starts from its worst-case keyframe before it
  (:func:`~evs_ros.pipeline.scheduler.keyframe_offset_for_eval`). Sources: the Cityscapes layout
  (real or ``evs synth``), synthetic snippets rendered on the fly, and ``video:DIR`` (snippets
  as video files with the annotated frame's ground truth beside them).
- **Labelled video** (``camvid:ROOT``): every frame has ground truth; every operating point runs
  from frame 0 (keyframes at 0, S, 2S, ... or as its adaptive policy decides) and every frame
  is scored, so all keyframe phases count alike.
- **Agreement with per-frame labels** (``clips:PATHS``, unlabelled real footage): the per-frame
  network's own labels of every frame are the reference (:func:`with_perframe_labels`), scored
  like labelled video; pixel accuracy is then the agreement with per-frame segmentation.
- **Single labelled frames** (``images:DIR``): each is a one-frame snippet (per-frame accuracy).

:class:`Scoring` says in which classes the ground truth is: the network's own (Cityscapes
trainIds for a Cityscapes network), or CamVid's 11 with Cityscapes trainIds mapped onto them by
one table (:data:`evs_ros.data.camvid.TRAIN_ID_TO_CAMVID`).
"""

import glob
import os
import re
from dataclasses import dataclass, replace
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from evs_ros.data.metrics import ConfusionMatrix


@dataclass
class EvalSnippet:
    """One snippet held in memory.

    Attributes:
        name: identifier for reports (``city_seq`` or ``synth_seed``).
        frames: uint8 (H, W, 3) BGR frames in time order.
        gt_labels: uint8 (H, W) ground truth of ``frames[annotated_index]`` (255 = ignore).
        annotated_index: the evaluated frame (19 = the paper's 20th frame); -1 = none.
        labels_all: uint8 (H, W) ground truth of every frame (labelled video), or None. When
            given, every frame is scored from a keyframe at frame 0 (module docstring).
    """

    name: str
    frames: List[np.ndarray]
    gt_labels: Optional[np.ndarray]
    annotated_index: int = 19
    labels_all: Optional[List[np.ndarray]] = None

    @property
    def every_frame_labelled(self) -> bool:
        """True for labelled video (the every-frame protocol)."""
        return self.labels_all is not None

    def scored(self) -> Dict[int, np.ndarray]:
        """Frame index -> ground truth of the frames that are scored."""
        if self.labels_all is not None:
            return dict(enumerate(self.labels_all))
        if 0 <= self.annotated_index < len(self.frames) and self.gt_labels is not None:
            return {self.annotated_index: self.gt_labels}
        return {}

    def first_frame(self, op) -> int:
        """Return the frame a run of operating point ``op`` starts on (with a keyframe)."""
        if self.labels_all is not None:
            return 0
        from evs_ros.pipeline.scheduler import keyframe_offset_for_eval
        return keyframe_offset_for_eval(op, self.annotated_index)

    def unscored(self) -> 'EvalSnippet':
        """Return the same frames with nothing to score (warm-up runs)."""
        return replace(self, annotated_index=-1, labels_all=None)


@dataclass(frozen=True)
class Scoring:
    """How predicted labels are scored against a dataset's ground truth.

    Attributes:
        class_names: the ground truth's classes (the confusion matrix's).
        prediction_lut: uint8 (256,) lookup from the network's label ids to the ground truth's
            (255 = no such class, a miss), or None when they are the same.
    """

    class_names: Tuple[str, ...]
    prediction_lut: Optional[np.ndarray] = None

    def confusion(self) -> ConfusionMatrix:
        """Return an empty confusion matrix that scores through ``prediction_lut``."""
        return ConfusionMatrix(len(self.class_names), prediction_lut=self.prediction_lut)


def scoring_for(data_kind: str, network_class_names: Sequence[str]) -> Scoring:
    """Return the :class:`Scoring` of a data source (``described['kind']``) for a network.

    Raises:
        ValueError: CamVid ground truth with a network that does not publish Cityscapes trainIds.
    """
    if data_kind != 'camvid':
        return Scoring(tuple(network_class_names))
    from evs_ros.data.camvid import CAMVID_CLASSES, TRAIN_ID_TO_CAMVID
    from evs_ros.data.classes import class_key
    from evs_ros.data.labels import CLASS_NAMES
    if [class_key(n) for n in network_class_names] != [class_key(n) for n in CLASS_NAMES]:
        raise ValueError('CamVid is scored through Cityscapes trainIds: the network must publish '
                         f'the 19 Cityscapes classes, not {", ".join(network_class_names[:4])}...')
    return Scoring(CAMVID_CLASSES, TRAIN_ID_TO_CAMVID)


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


def camvid_snippets(root: str, split: str = 'val', size_wh: Optional[Tuple[int, int]] = None,
                    limit: Optional[int] = None) -> Iterator[EvalSnippet]:
    """Yield CamVid's labelled sequences as labelled-video snippets (every frame scored)."""
    from evs_ros.data.camvid import list_sequences, read_camvid_labels
    from evs_ros.data.cityscapes import read_image
    for sequence in list_sequences(root, split)[:limit]:
        frames = [_resize(read_image(path), size_wh, cv2.INTER_AREA) for path in sequence.images]
        labels = [_resize(read_camvid_labels(path), size_wh, cv2.INTER_NEAREST)
                  for path in sequence.labels]
        yield EvalSnippet(name=sequence.name, frames=frames, gt_labels=labels[-1],
                          annotated_index=len(frames) - 1, labels_all=labels)


_VIDEO_RE = re.compile(r'^(?P<stem>.+)_(?P<seq>\d{6})_(?P<first>\d{6})\.(mp4|avi|mkv|mov)$')
GT_SUFFIXES = ('_gtFine_labelTrainIds*.png', '_gtFine_labelIds.png', '_gtFine_color.png')
"""Ground-truth files of an annotated frame, in order of preference."""


def list_video_snippets(directory: str) -> List[Tuple[str, str, int, str]]:
    """``video:DIR`` snippets: (name, video path, annotated index, ground-truth path) each.

    A video ``{city}_{seq:06d}_{first:06d}.mp4`` holds frames ``first, first + 1, ...``; its
    annotated frame is the one with a ground-truth file ``{city}_{seq:06d}_{frame:06d}`` +
    one of :data:`GT_SUFFIXES` in ``DIR`` (frame 19 when several are labelled, else the last).

    Raises:
        FileNotFoundError: ``directory`` holds no video with ground truth (names the layout).
    """
    found = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        match = _VIDEO_RE.match(name)
        if not match:
            continue
        prefix = os.path.join(directory, f"{match['stem']}_{match['seq']}_")
        labelled = {}
        for suffix in reversed(GT_SUFFIXES):  # the preferred kind wins
            for path in glob.glob(glob.escape(prefix) + '[0-9]' * 6 + suffix):
                number = int(os.path.basename(path)[len(os.path.basename(prefix)):][:6])
                labelled[number - int(match['first'])] = path
        labelled = {index: path for index, path in labelled.items() if index >= 0}
        if labelled:
            index = 19 if 19 in labelled else max(labelled)
            found.append((os.path.splitext(name)[0], os.path.join(directory, name), index,
                          labelled[index]))
    if not found:
        raise FileNotFoundError(f'video:{directory}: no CITY_SEQ_FIRST.mp4 with a '
                                'CITY_SEQ_FRAME_gtFine_{labelTrainIds,labelIds,color}.png beside '
                                'it (Cityscapes snippets as video files)')
    return found


def read_ground_truth(path: str) -> np.ndarray:
    """uint8 (H, W) trainIds from a labelTrainIds, labelIds or colour ground-truth file."""
    from evs_ros.data.cityscapes import read_labels
    from evs_ros.data.labels import label_ids_to_train_ids, train_ids_from_color
    if path.endswith('_gtFine_color.png'):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'cannot read {path}')
        return train_ids_from_color(image[:, :, ::-1])
    if path.endswith('_gtFine_labelIds.png'):
        return label_ids_to_train_ids(cv2.imread(path, cv2.IMREAD_UNCHANGED))
    return read_labels(path)


def video_snippets(directory: str, size_wh: Optional[Tuple[int, int]] = None,
                   limit: Optional[int] = None, max_frames: int = 30) -> Iterator[EvalSnippet]:
    """``video:DIR`` snippets (:func:`list_video_snippets`), at most ``max_frames`` frames each."""
    from evs_ros.data.video import iter_video
    for name, path, index, gt_path in list_video_snippets(directory)[:limit]:
        frames = [_resize(frame, size_wh, cv2.INTER_AREA)
                  for frame in iter_video(path, max_frames=max_frames)]
        if index >= len(frames):
            raise ValueError(f'{path} has {len(frames)} frames; its ground truth is for frame '
                             f'{index}')
        labels = _resize(read_ground_truth(gt_path), size_wh or frames[0].shape[1::-1],
                         cv2.INTER_NEAREST)
        yield EvalSnippet(name=name, frames=frames, gt_labels=labels, annotated_index=index)


def list_clips(paths: str) -> List[str]:
    """``clips:`` paths (comma list of video files or folders of them) -> video files.

    Raises:
        FileNotFoundError: a path does not exist or a folder holds no video.
    """
    from evs_ros.data.video import list_videos
    return list_videos(paths)


def clip_snippets(paths: Sequence[str], size_wh: Optional[Tuple[int, int]] = None,
                  max_frames: Optional[int] = None) -> Iterator[EvalSnippet]:
    """Unlabelled video files as snippets without ground truth (:func:`with_perframe_labels`)."""
    from evs_ros.data.video import iter_video
    for path in paths:
        frames = [_resize(frame, size_wh, cv2.INTER_AREA)
                  for frame in iter_video(path, max_frames=max_frames)]
        if not frames:
            raise ValueError(f'{path}: no frame could be decoded')
        yield EvalSnippet(name=os.path.splitext(os.path.basename(path))[0], frames=frames,
                          gt_labels=None, annotated_index=-1)


def with_perframe_labels(snippets: Iterable[EvalSnippet], model) -> Iterator[EvalSnippet]:
    """Each snippet with the per-frame network's labels of every frame as its ground truth.

    The agreement protocol (module docstring). The labels are exactly PERFRAME's outputs.
    """
    from evs_ros.config import BASELINE, EvsConfig
    from evs_ros.pipeline.pipeline import EvsPipeline
    pipeline = EvsPipeline(replace(EvsConfig(), operating_point=BASELINE), model)
    for snippet in snippets:
        pipeline.reset()
        labels = [pipeline.process(frame).labels.copy() for frame in snippet.frames]
        yield replace(snippet, gt_labels=labels[-1], annotated_index=len(labels) - 1,
                      labels_all=labels)


def image_snippets(directory: str, size_wh: Optional[Tuple[int, int]] = None,
                   limit: Optional[int] = None) -> Iterator[EvalSnippet]:
    """``images:DIR``.

    Every ``*_leftImg8bit.png`` with a ground-truth file of :data:`GT_SUFFIXES` beside it, as a
    one-frame snippet.
    """
    from evs_ros.data.cityscapes import read_image
    for image_path, gt_path in list_labelled_images(directory)[:limit]:
        frame = _resize(read_image(image_path), size_wh, cv2.INTER_AREA)
        labels = _resize(read_ground_truth(gt_path), frame.shape[1::-1], cv2.INTER_NEAREST)
        name = os.path.basename(image_path)[:-len('_leftImg8bit.png')]
        yield EvalSnippet(name=name, frames=[frame], gt_labels=labels, annotated_index=0)


def list_labelled_images(directory: str) -> List[Tuple[str, str]]:
    """(image, ground truth) pairs of ``images:DIR`` (the preferred ground-truth kind)."""
    pairs = []
    for image in sorted(glob.glob(os.path.join(glob.escape(directory), '*_leftImg8bit.png'))):
        stem = image[:-len('_leftImg8bit.png')]
        truths = [path for suffix in GT_SUFFIXES
                  for path in sorted(glob.glob(glob.escape(stem) + suffix))]
        if truths:
            pairs.append((image, truths[0]))
    if not pairs:
        raise FileNotFoundError(f'images:{directory}: no NAME_leftImg8bit.png with a '
                                'NAME_gtFine_{labelTrainIds,labelIds,color}.png beside it')
    return pairs


def split_data_spec(data: str) -> Tuple[str, str]:
    """Split ``--data`` into (kind, path).

    ``camvid:ROOT``, ``video:DIR``, ``clips:PATHS``, ``images:DIR`` or a Cityscapes-layout ROOT.
    """
    for kind in ('camvid', 'video', 'clips', 'images'):
        if data.startswith(kind + ':'):
            return kind, data[len(kind) + 1:]
    return 'cityscapes_layout', data


def snippet_source(data_root: Optional[str] = None, split: str = 'val', synth_count: int = 0,
                   synth_seed: int = 0, max_snippets: Optional[int] = None,
                   size_wh: Optional[Tuple[int, int]] = None):
    """Return the annotated snippets of a dataset, or ``synth_count`` synthetic ones.

    ``data_root``: see :func:`split_data_spec`.

    Returns:
        (snippet iterator, expected count, JSON description of the data).
    """
    kind, path = split_data_spec(data_root) if data_root else ('synthetic', '')
    if kind == 'camvid':
        from evs_ros.data.camvid import list_sequences
        count = len(list_sequences(path, split)[:max_snippets])
        described = {'kind': 'camvid', 'root': os.path.abspath(path), 'split': split,
                     'protocol': 'every frame labelled and scored, keyframe at frame 0'}
        return camvid_snippets(path, split, size_wh, max_snippets), count, described
    if kind == 'video':
        count = len(list_video_snippets(path)[:max_snippets])
        described = {'kind': 'video', 'root': os.path.abspath(path)}
        return video_snippets(path, size_wh, max_snippets), count, described
    if kind == 'clips':
        clips = list_clips(path)[:max_snippets]
        described = {'kind': 'clips', 'clips': [os.path.abspath(c) for c in clips],
                     'protocol': 'agreement with the per-frame network on every frame'}
        return clip_snippets(clips, size_wh), len(clips), described
    if kind == 'images':
        count = len(list_labelled_images(path)[:max_snippets])
        described = {'kind': 'images', 'root': os.path.abspath(path)}
        return image_snippets(path, size_wh, max_snippets), count, described
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
