"""Operating points against the per-frame baseline on the same snippets (paper Tables 1-2).

Protocol (paper §4.1: "evaluated on the 20th frame with different starting points before it"):
every operating point processes each snippet from a keyframe placed so that the annotated frame
(index 19 of a 30-frame snippet) is its worst case, ``S - 1`` propagations after the keyframe
(``S_max - 1`` in adaptive mode; see :func:`~evs_ros.pipeline.scheduler.keyframe_offset_for_eval`),
and goes on to the end of the snippet so that timing sees whole keyframe cycles. All operating
points, the per-frame baseline (``config.BASELINE``) included, run over the same in-memory frames
in one process, snippet by snippet, so that load changes hit them alike.

* ``hz`` = frames processed / wall time spent inside ``EvsPipeline.process`` (no I/O, no metric);
  ``speedup`` = hz / hz of the baseline measured in the same run.
Labelled video (every frame has ground truth, ``camvid:ROOT``) runs from frame 0 and scores
every frame instead (:mod:`evs_ros.evaluation.snippets`).

* ``miou`` / ``per_class_iou``: one confusion matrix per operating point over the annotated
  (scored) frames of all snippets (Cityscapes definition,
  :class:`~evs_ros.data.metrics.ConfusionMatrix`).
"""

import math
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

from evs_ros.config import BASELINE, EvsConfig, OperatingPoint
from evs_ros.data.json_values import finite_or_none
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.data.metrics import ConfusionMatrix
from evs_ros.evaluation.snippets import EvalSnippet, Scoring
from evs_ros.pipeline.pipeline import EvsPipeline
from evs_ros.pipeline.results import STAGES
from evs_ros.pipeline.stats import percentiles


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
        """Return the JSON entry of this operating point (``evs bench`` schema)."""
        op, metrics = self.op, self.confusion.as_dict(class_names)
        fractions = [v for v in self.annotated_fractions if math.isfinite(v)]
        return {
            'name': op.name, 'D': op.downscale, 'S': op.keyframe_interval, 'W': op.warp,
            'R': op.refine, 'adaptive': op.adaptive,
            'max_keyframe_interval': op.max_keyframe_interval if op.adaptive else None,
            'hz': finite_or_none(self.hz, 3),
            'speedup': finite_or_none(self.hz / baseline_hz, 4),
            'miou': metrics['miou'], 'pixel_accuracy': metrics['pixel_accuracy'],
            'per_class_iou': metrics['iou'],
            'latency_ms_p50': percentiles(self.frame_ms)['p50'],
            'latency_ms_p99': percentiles(self.frame_ms)['p99'],
            'stage_ms': {key: percentiles(values) for key, values in self.stage_ms.items()},
            'frames': self.frames, 'keyframes': self.keyframes, 'refined_frames': self.refined,
            'snippets': len(self.annotated_ages),
            'propagations_at_annotated': max(self.annotated_ages, default=None),
            'inconsistent_fraction_at_annotated': (
                round(float(np.mean(fractions)), 6) if fractions else None),
        }


def run_segment(pipeline: EvsPipeline, snippet: EvalSnippet, start: int, stop: int, run=None):
    """Process ``frames[start:stop]`` after a reset; returns the annotated frame's FrameResult.

    Only ``pipeline.process`` is timed into ``run`` (an :class:`OperatingPointRun` or None);
    the scored frames inside the segment (:meth:`EvalSnippet.scored`) update ``run.confusion``.
    """
    pipeline.reset()
    annotated = None
    scored = snippet.scored()
    for index in range(start, stop):
        begin = time.perf_counter()
        result = pipeline.process(snippet.frames[index])
        elapsed_s = time.perf_counter() - begin
        if run is not None:
            _record_frame(run, result.info, elapsed_s)
        if index == snippet.annotated_index:
            annotated = result
        if index in scored and run is not None:
            run.confusion.update(result.labels, scored[index])
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
        scoring: the ground truth's classes (default: Cityscapes' 19, predictions as they are).
    """

    def __init__(self, model, refiner=None, operating_points: Sequence[OperatingPoint] = (),
                 config: EvsConfig = EvsConfig(), scoring: Optional[Scoring] = None):
        ops = [BASELINE] + [op for op in operating_points if op.name != BASELINE.name]
        scoring = scoring or Scoring(tuple(CLASS_NAMES))
        self.class_names = list(scoring.class_names)
        self.runs = [OperatingPointRun(op, scoring.confusion()) for op in ops]
        self._pipelines = [
            EvsPipeline(replace(config, operating_point=op), model,
                        refiner if op.refine else None) for op in ops]

    def warm_up(self, snippet: EvalSnippet, frames: int = 3) -> None:
        """Run a few untimed frames through every pipeline (lazy inits, caches, allocators)."""
        stop = min(frames, len(snippet.frames))
        for pipeline in self._pipelines:
            pipeline.set_operating_point(replace(pipeline.operating_point, keyframe_interval=2))
            run_segment(pipeline, snippet.unscored(), 0, stop)
        for pipeline, run in zip(self._pipelines, self.runs):
            pipeline.set_operating_point(run.op)

    def add(self, snippet: EvalSnippet) -> None:
        """Evaluate every operating point on ``snippet``.

        From its first frame (:meth:`EvalSnippet.first_frame`) to the end.

        Two untimed baseline frames first: loading or rendering the snippet evicts the caches,
        which would otherwise slow down whichever operating point runs first.
        """
        run_segment(self._pipelines[0], snippet.unscored(), 0, min(2, len(snippet.frames)))
        for pipeline, run in zip(self._pipelines, self.runs):
            run_segment(pipeline, snippet, snippet.first_frame(run.op), len(snippet.frames), run)

    def results(self) -> List[Dict[str, object]]:
        """One JSON-ready summary per operating point, baseline first."""
        baseline_hz = self.runs[0].hz
        return [run.summary(baseline_hz, self.class_names) for run in self.runs]
