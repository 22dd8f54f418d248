"""Offline evaluation of operating points: speed and accuracy (paper §4.1, Tables 1-2, Fig. 6-7).

Protocol (paper §4.1: "evaluated on the 20th frame with different starting points before it"):
every operating point processes each snippet from a keyframe placed so that the annotated frame
(index 19 of a 30-frame snippet) is its worst case, ``S - 1`` propagations after the keyframe
(``S_max - 1`` in adaptive mode; see :func:`~evs_ros.pipeline.scheduler.keyframe_offset_for_eval`),
and goes on to the end of the snippet so that timing sees whole keyframe cycles. All operating
points, the per-frame baseline (``config.BASELINE``) included, run over the same in-memory frames
in one process, snippet by snippet, so that load changes hit them alike.

* ``hz`` = frames processed / wall time spent inside ``EvsPipeline.process`` (no I/O, no metric);
  ``speedup`` = hz / hz of the baseline measured in the same run.
* ``miou`` / ``per_class_iou``: one confusion matrix per operating point over the annotated
  frames of all snippets (Cityscapes definition, :class:`~evs_ros.data.metrics.ConfusionMatrix`).
* Figure 6 (:class:`PropagationStudy`): pure label propagation (W on, R off) from a keyframe N
  frames before the annotated frame, N = 0..max, DIS vs Farneback. Figure 7: IAM's inconsistent
  fraction after 1, 2 and 4 propagations, collected from the DIS runs of Figure 6.
"""

import math
import time
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from evs_ros.config import BASELINE, OPERATING_POINTS, EvsConfig, OperatingPoint
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.data.metrics import ConfusionMatrix
from evs_ros.pipeline.pipeline import EvsPipeline
from evs_ros.pipeline.results import STAGES
from evs_ros.pipeline.scheduler import keyframe_offset_for_eval

TABLE1_PAIRS = (('S=2', 'EVS03', 'EVS02'), ('S=5', 'EVS07', 'EVS06'))
"""Paper Table 1: (case, operating point without refinement, with refinement)."""
FIGURE7_PROPAGATIONS = (1, 2, 4)
FIGURE7_BINS_PERCENT = tuple(float(edge) for edge in np.arange(0.0, 10.5, 0.5)) + (100.0,)


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


def _percentiles(values_ms: Sequence[float]) -> Dict[str, Optional[float]]:
    if not len(values_ms):
        return {'p50': None, 'p99': None}
    return {'p50': round(float(np.percentile(values_ms, 50)), 3),
            'p99': round(float(np.percentile(values_ms, 99)), 3)}


def _finite_or_none(value: float, digits: int = 6) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


@dataclass
class OperatingPointRun:
    """Everything measured for one operating point, accumulated over snippets."""

    op: OperatingPoint
    confusion: ConfusionMatrix
    frames: int = 0
    keyframes: int = 0
    refined: int = 0
    wall_s: float = 0.0
    frame_ms: List[float] = field(default_factory=list)
    stage_ms: Dict[str, List[float]] = field(default_factory=dict)
    annotated_ages: List[int] = field(default_factory=list)
    annotated_fractions: List[float] = field(default_factory=list)

    @property
    def hz(self) -> float:
        """Frames per second of pipeline time (NaN before any frame)."""
        return self.frames / self.wall_s if self.wall_s > 0 else math.nan

    def summary(self, baseline_hz: float, class_names: Sequence[str]) -> Dict[str, object]:
        """The JSON entry of this operating point (``evs bench`` schema)."""
        op, metrics = self.op, self.confusion.as_dict(class_names)
        fractions = [v for v in self.annotated_fractions if math.isfinite(v)]
        return {
            'name': op.name, 'D': op.downscale, 'S': op.keyframe_interval, 'W': op.warp,
            'R': op.refine, 'adaptive': op.adaptive,
            'max_keyframe_interval': op.max_keyframe_interval if op.adaptive else None,
            'hz': _finite_or_none(self.hz, 3),
            'speedup': _finite_or_none(self.hz / baseline_hz, 4),
            'miou': metrics['miou'], 'pixel_accuracy': metrics['pixel_accuracy'],
            'per_class_iou': metrics['iou'],
            'latency_ms_p50': _percentiles(self.frame_ms)['p50'],
            'latency_ms_p99': _percentiles(self.frame_ms)['p99'],
            'stage_ms': {key: _percentiles(values) for key, values in self.stage_ms.items()},
            'frames': self.frames, 'keyframes': self.keyframes, 'refined_frames': self.refined,
            'snippets': len(self.annotated_ages),
            'propagations_at_annotated': max(self.annotated_ages, default=None),
            'inconsistent_fraction_at_annotated': (
                round(float(np.mean(fractions)), 6) if fractions else None),
        }


def run_segment(pipeline: EvsPipeline, snippet: EvalSnippet, start: int, stop: int, run=None):
    """Process ``frames[start:stop]`` after a reset; returns the annotated frame's FrameResult.

    Only ``pipeline.process`` is timed into ``run`` (an :class:`OperatingPointRun` or None);
    the annotated frame (if inside the segment) updates ``run.confusion``.
    """
    pipeline.reset()
    annotated = None
    for index in range(start, stop):
        begin = time.perf_counter()
        result = pipeline.process(snippet.frames[index])
        elapsed_s = time.perf_counter() - begin
        if run is not None:
            _record_frame(run, result.info, elapsed_s)
        if index == snippet.annotated_index:
            annotated = result
            if run is not None:
                run.confusion.update(result.labels, snippet.gt_labels)
                run.annotated_ages.append(result.info.frames_since_keyframe)
                run.annotated_fractions.append(result.info.inconsistent_fraction)
    return annotated


def _record_frame(run: OperatingPointRun, info, elapsed_s: float) -> None:
    run.frames += 1
    run.keyframes += int(info.keyframe)
    run.refined += int(info.refined)
    run.wall_s += elapsed_s
    run.frame_ms.append(elapsed_s * 1000.0)
    for key in STAGES:
        value = getattr(info, key)
        if value > 0.0:
            run.stage_ms.setdefault(key, []).append(value)


class OperatingPointEvaluator:
    """Runs a list of operating points plus the per-frame baseline on each snippet it is given.

    Args:
        model: a ``SegmentationModel`` shared by all operating points.
        refiner: a ``RefinerModel`` or None (R acts as off).
        operating_points: the points to evaluate; ``BASELINE`` (PERFRAME) is always added first.
        config: flow / IAM settings (its operating point is ignored).
        class_names: names of the ``model.num_classes`` classes (reports).
    """

    def __init__(self, model, refiner=None, operating_points: Sequence[OperatingPoint] = (),
                 config: EvsConfig = EvsConfig(), class_names: Sequence[str] = CLASS_NAMES):
        ops = [BASELINE] + [op for op in operating_points if op.name != BASELINE.name]
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        self.runs = [OperatingPointRun(op, ConfusionMatrix(num_classes)) for op in ops]
        self._pipelines = [
            EvsPipeline(replace(config, operating_point=op), model,
                        refiner if op.refine else None) for op in ops]

    def warm_up(self, snippet: EvalSnippet, frames: int = 3) -> None:
        """Run a few untimed frames through every pipeline (lazy inits, caches, allocators)."""
        stop = min(frames, len(snippet.frames))
        for pipeline in self._pipelines:
            pipeline.set_operating_point(replace(pipeline.operating_point, keyframe_interval=2))
            run_segment(pipeline, replace(snippet, annotated_index=-1), 0, stop)
        for pipeline, run in zip(self._pipelines, self.runs):
            pipeline.set_operating_point(run.op)

    def add(self, snippet: EvalSnippet) -> None:
        """Evaluate every operating point on ``snippet`` (from its worst-case start to the end).

        Two untimed baseline frames first: loading or rendering the snippet evicts the caches,
        which would otherwise slow down whichever operating point runs first.
        """
        run_segment(self._pipelines[0], replace(snippet, annotated_index=-1), 0,
                    min(2, len(snippet.frames)))
        for pipeline, run in zip(self._pipelines, self.runs):
            start = keyframe_offset_for_eval(run.op, snippet.annotated_index)
            run_segment(pipeline, snippet, start, len(snippet.frames), run)

    def results(self) -> List[Dict[str, object]]:
        """One JSON-ready summary per operating point, baseline first."""
        baseline_hz = self.runs[0].hz
        return [run.summary(baseline_hz, self.class_names) for run in self.runs]


class PropagationStudy:
    """Figures 6 and 7: pure label propagation (W on, R off) from keyframes N frames back.

    Args:
        model: the ``SegmentationModel`` giving the keyframe labels.
        max_propagations: largest N (the annotated frame is N frames after the keyframe).
        methods: flow methods compared (``FlowConfig.method``).
        config: flow / IAM settings; its flow method is replaced per method.
    """

    def __init__(self, model, max_propagations: int = 10, methods=('dis', 'farneback'),
                 config: EvsConfig = EvsConfig(), num_classes: int = len(CLASS_NAMES)):
        self.max_propagations = int(max_propagations)
        self._pipelines = {method: EvsPipeline(
            replace(config, flow=replace(config.flow, method=method)), model)
            for method in methods}
        self._confusions = {(method, n): ConfusionMatrix(num_classes) for method in methods
                            for n in range(self.max_propagations + 1)}
        self._fractions: Dict[int, List[float]] = {k: [] for k in FIGURE7_PROPAGATIONS}

    @staticmethod
    def propagation_op(propagations: int) -> OperatingPoint:
        """W on, R off, keyframe every N+1 frames: the frame N after a keyframe is the last."""
        return OperatingPoint(name=f'PROP{propagations}', downscale=1.0,
                              keyframe_interval=propagations + 1, warp=True, refine=False)

    def add(self, snippet: EvalSnippet) -> None:
        """Propagate from every start ``annotated - N`` (N = 0..max) with every method."""
        annotated = snippet.annotated_index
        for method, pipeline in self._pipelines.items():
            for n in range(min(self.max_propagations, annotated) + 1):
                pipeline.set_operating_point(self.propagation_op(n))
                infos = []
                pipeline.reset()
                for index in range(annotated - n, annotated + 1):
                    result = pipeline.process(snippet.frames[index])
                    infos.append(result.info)
                self._confusions[(method, n)].update(result.labels, snippet.gt_labels)
                if method == 'dis':
                    self._collect_fractions(infos)

    def _collect_fractions(self, infos) -> None:
        for info in infos:
            fraction = info.inconsistent_fraction
            if info.frames_since_keyframe in self._fractions and math.isfinite(fraction):
                self._fractions[info.frames_since_keyframe].append(fraction)

    def figure6(self) -> Dict[str, object]:
        """``{'propagations': [0..N], 'methods': {method: {'miou': [...]}}}`` (null = no data)."""
        methods = {}
        for method in self._pipelines:
            mious = [self._confusions[(method, n)].miou()
                     for n in range(self.max_propagations + 1)]
            methods[method] = {'miou': [_finite_or_none(v) for v in mious]}
        return {'propagations': list(range(self.max_propagations + 1)), 'methods': methods,
                'setting': 'W on, R off, D=1; keyframe N frames before the annotated frame'}

    def figure7(self) -> Dict[str, object]:
        """Inconsistent fraction after 1, 2, 4 propagations: samples, histogram, statistics."""
        edges = list(FIGURE7_BINS_PERCENT)
        entries = {}
        for k, values in self._fractions.items():
            percent = np.asarray(values, np.float64) * 100.0
            counts = np.histogram(percent, bins=edges)[0] if len(percent) else np.zeros(
                len(edges) - 1, np.int64)
            entries[str(k)] = {
                'n': int(len(percent)), 'counts': [int(c) for c in counts],
                'mean_percent': _finite_or_none(float(percent.mean()) if len(percent) else None),
                'median_percent': _finite_or_none(
                    float(np.median(percent)) if len(percent) else None),
                'below_5_percent': _finite_or_none(
                    float((percent < 5.0).mean()) if len(percent) else None),
                'fractions': [round(float(v), 6) for v in values],
            }
        return {'propagations': list(FIGURE7_PROPAGATIONS), 'bin_edges_percent': edges,
                'by_propagations': entries}


def table1(results: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Paper Table 1 from operating point summaries: per-class IoU without / with refinement.

    ``recovery`` = with - without (IoU, same units as ``per_class_iou``); cases whose operating
    points were not evaluated are left out.
    """
    by_name = {entry['name']: entry for entry in results}
    rows = []
    for case, without_name, with_name in TABLE1_PAIRS:
        if without_name not in by_name or with_name not in by_name:
            continue
        without, with_ = by_name[without_name], by_name[with_name]
        recovery = {name: _difference(with_['per_class_iou'][name], value)
                    for name, value in without['per_class_iou'].items()}
        rows.append({
            'case': case, 'propagations': OPERATING_POINTS[with_name].keyframe_interval - 1,
            'without_refinement': _table_row(without), 'with_refinement': _table_row(with_),
            'recovery': {'miou': _difference(with_['miou'], without['miou']),
                         'per_class_iou': recovery},
        })
    baseline = by_name.get(BASELINE.name)
    return {'rows': rows, 'perframe': _table_row(baseline) if baseline else None}


def _table_row(entry: Dict[str, object]) -> Dict[str, object]:
    return {'operating_point': entry['name'], 'miou': entry['miou'],
            'per_class_iou': dict(entry['per_class_iou'])}


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else round(a - b, 6)


def model_class_names(model) -> List[str]:
    """The model's class names, else Cityscapes' 19 for 19 classes, else ``class_<i>``."""
    names = getattr(model, 'class_names', None)
    if names and len(names) == model.num_classes:
        return list(names)
    if model.num_classes == len(CLASS_NAMES):
        return list(CLASS_NAMES)
    return [f'class_{index}' for index in range(model.num_classes)]


def evaluate(snippets: Iterable[EvalSnippet], model, refiner=None,
             operating_points: Sequence[OperatingPoint] = tuple(OPERATING_POINTS.values()),
             config: EvsConfig = EvsConfig(), figure_propagations: int = 0,
             progress=None) -> Dict[str, object]:
    """Evaluate operating points (and optionally Figures 6-7) over ``snippets``.

    Args:
        snippets: :class:`EvalSnippet` iterable, consumed once (one snippet in memory at a time).
        model, refiner: shared by all operating points (refiner None: R acts as off).
        operating_points: evaluated after the per-frame baseline PERFRAME.
        config: flow / IAM settings.
        figure_propagations: largest N of Figure 6 (0 = skip Figures 6 and 7).
        progress: optional callable ``progress(snippet)`` after each snippet (e.g. tqdm update).

    Returns:
        ``{'resolution' ('WxH'), 'snippets', 'operating_points', 'table1', 'figure6',
        'figure7'}`` (JSON-ready; the figures are None when skipped).
    """
    class_names = model_class_names(model)
    evaluator = OperatingPointEvaluator(model, refiner, operating_points, config, class_names)
    study = None
    if figure_propagations > 0:
        study = PropagationStudy(model, figure_propagations, config=config,
                                 num_classes=len(class_names))
    names, resolution = [], None
    for snippet in snippets:
        if not names:
            evaluator.warm_up(snippet)
            resolution = f'{snippet.frames[0].shape[1]}x{snippet.frames[0].shape[0]}'
        evaluator.add(snippet)
        if study is not None:
            study.add(snippet)
        names.append(snippet.name)
        if progress is not None:
            progress(snippet)
    if not names:
        raise ValueError('no annotated snippet to evaluate (check --data/--split)')
    results = evaluator.results()
    return {'resolution': resolution, 'snippets': names, 'operating_points': results,
            'table1': table1(results),
            'figure6': study.figure6() if study else None,
            'figure7': study.figure7() if study else None}
