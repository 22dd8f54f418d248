"""One evaluation run and its report: operating points, Table 1, Figures 6-7 (paper §4).

:func:`evaluate` runs every operating point plus the per-frame baseline over the same snippets
(:mod:`evs_ros.evaluation.operating_points`) and optionally the propagation study of Figures 6-7
(:mod:`evs_ros.evaluation.figures`); :func:`table1` pairs operating points without and with the
Refiner like the paper's Table 1.
"""

from typing import Dict, Iterable, List, Optional, Sequence

from evs_ros.config import BASELINE, OPERATING_POINTS, EvsConfig, OperatingPoint
from evs_ros.data.classes import default_class_names
from evs_ros.data.json_values import finite_or_none
from evs_ros.evaluation.figures import PropagationStudy
from evs_ros.evaluation.operating_points import OperatingPointEvaluator
from evs_ros.evaluation.snippets import EvalSnippet, Scoring

TABLE1_PAIRS = (('S=2', 'EVS03', 'EVS02'), ('S=5', 'EVS07', 'EVS06'))
"""Paper Table 1: (case, operating point without refinement, with refinement)."""


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
    """Return the model's class names, else Cityscapes' 19 for 19 classes, else ``class_<i>``."""
    names = getattr(model, 'class_names', None)
    if names and len(names) == model.num_classes:
        return list(names)
    return list(default_class_names(model.num_classes))


def evaluate(snippets: Iterable[EvalSnippet], model, refiner=None,
             operating_points: Sequence[OperatingPoint] = tuple(OPERATING_POINTS.values()),
             config: EvsConfig = EvsConfig(), figure_propagations: int = 0,
             progress=None, runtime: bool = False,
             scoring: Optional[Scoring] = None,
             torch_reference: bool = False) -> Dict[str, object]:
    """Evaluate operating points (and optionally Figures 6-7 and the runtime) over ``snippets``.

    Args:
        snippets: :class:`EvalSnippet` iterable, consumed once (one snippet in memory at a time).
        model, refiner: shared by all operating points (refiner None: R acts as off).
        operating_points: evaluated after the per-frame baseline PERFRAME.
        config: flow / IAM settings.
        figure_propagations: largest N of Figure 6 (0 = skip Figures 6 and 7).
        progress: optional callable ``progress(snippet)`` after each snippet (e.g. tqdm update).
        runtime: also run every operating point through the two-worker runtime on both cores
            (:mod:`evs_ros.evaluation.runtime_runs`): ``runtime_hz``, ``runtime_speedup``,
            ``runtime_miou`` per operating point, ``perframe_hz_both_cores`` at the top.
        torch_reference: also time the per-frame network on torch eager (what a user had
            without an engine; :class:`TorchReference`): ``perframe_torch_hz`` (and
            ``perframe_torch_hz_both_cores``) at the top, ``speedup_vs_torch`` (and
            ``runtime_speedup_vs_torch``) per operating point. The baseline PERFRAME and every
            ``speedup`` stay on the model's own engine.
        scoring: the ground truth's classes (default: the network's own, predictions as they
            are; :func:`~evs_ros.evaluation.snippets.scoring_for` for other datasets).

    Returns:
        ``{'resolution' ('WxH'), 'snippets', 'operating_points', 'table1', 'figure6',
        'figure7'}`` (JSON-ready; the figures are None when skipped).
    """
    scoring = scoring or Scoring(tuple(model_class_names(model)))
    evaluator = OperatingPointEvaluator(model, refiner, operating_points, config, scoring)
    study = None
    if figure_propagations > 0:
        study = PropagationStudy(model, figure_propagations, config=config, scoring=scoring)
    extra = _runtime_parts(model, refiner, operating_points, config, scoring, runtime)
    reference = TorchReference(model, config, scoring, runtime) if torch_reference else None
    try:
        names, resolution = _run_snippets(snippets, evaluator, study, extra, progress,
                                          reference)
    finally:
        for part in extra:
            part.close()
    if not names:
        raise ValueError('no annotated snippet to evaluate (check --data/--split)')
    results = evaluator.results()
    report = {'resolution': resolution, 'snippets': names, 'operating_points': results,
              'scored_classes': list(scoring.class_names),
              'table1': table1(results),
              'figure6': study.figure6() if study else None,
              'figure7': study.figure7() if study else None}
    if extra:
        _merge_runtime(report, *extra)
    if reference is not None:
        reference.merge(report)
    return report


def _run_snippets(snippets, evaluator, study, extra, progress, reference=None):
    """Every part on every snippet (one snippet in memory); returns (names, 'WxH')."""
    names, resolution = [], None
    for snippet in snippets:
        if not names:
            _warm_up(snippet, evaluator, extra)
            if reference is not None:
                reference.warm_up(snippet)
            resolution = f'{snippet.frames[0].shape[1]}x{snippet.frames[0].shape[0]}'
        for part in (evaluator, study, reference) + extra:
            if part is not None:
                part.add(snippet)
        names.append(snippet.name)
        if progress is not None:
            progress(snippet)
    return names, resolution


def _runtime_parts(model, refiner, operating_points, config, scoring, runtime: bool):
    """Return (BothCoresBaseline, RuntimeEvaluator) when ``runtime``, else ().

    The baseline runs first on each snippet, before the runtime's threads exist.
    """
    if not runtime:
        return ()
    from evs_ros.evaluation.runtime_runs import BothCoresBaseline, RuntimeEvaluator
    return (BothCoresBaseline(model),
            RuntimeEvaluator(model, refiner, operating_points, config, scoring))


def _warm_up(snippet: EvalSnippet, evaluator, extra) -> None:
    evaluator.warm_up(snippet)
    if extra:
        extra[1].warm_up(snippet)


class TorchReference:
    """The per-frame network on torch eager, next to a model on another engine.

    What a user has without an engine. Timed exactly as the baseline PERFRAME (the synchronous
    pipeline on one core) and, with the runtime, as the per-frame network with all threads on both
    cores. Nothing is measured twice when the model runs on torch already.
    """

    def __init__(self, model, config: EvsConfig, scoring: Scoring, runtime: bool = False):
        from evs_ros.models.graph import torch_twin
        twin = torch_twin(model)
        self.same = twin is model
        self.sync = None if self.same else OperatingPointEvaluator(twin, None, (), config,
                                                                   scoring)
        self.both = None
        if runtime and not self.same:
            from evs_ros.evaluation.runtime_runs import BothCoresBaseline
            self.both = BothCoresBaseline(twin)

    def warm_up(self, snippet: EvalSnippet) -> None:
        if self.sync is not None:
            self.sync.warm_up(snippet)

    def add(self, snippet: EvalSnippet) -> None:
        if self.sync is not None:
            self.sync.add(snippet)
        if self.both is not None:
            self.both.add(snippet)

    def merge(self, report: Dict[str, object]) -> None:
        """Add ``perframe_torch_hz`` (+ both cores) and the speedups against them."""
        entries = report['operating_points']
        sync_hz = entries[0]['hz'] if self.same else self.sync.results()[0]['hz']
        both_hz = (report.get('perframe_hz_both_cores') if self.same or self.both is None
                   else finite_or_none(self.both.hz, 3))
        report['perframe_torch_hz'] = sync_hz
        if 'perframe_hz_both_cores' in report:
            report['perframe_torch_hz_both_cores'] = both_hz
        for entry in entries:
            entry['speedup_vs_torch'] = _ratio(entry['hz'], sync_hz)
            if 'perframe_hz_both_cores' in report:
                entry['runtime_speedup_vs_torch'] = _ratio(entry.get('runtime_hz'), both_hz)


def _ratio(hz: Optional[float], base_hz: Optional[float]) -> Optional[float]:
    return None if not hz or not base_hz else round(hz / base_hz, 4)


def _merge_runtime(report: Dict[str, object], baseline, runtime_evaluator) -> None:
    """Add the runtime's keys to every operating point's entry (the baseline's by definition)."""
    perframe_hz = baseline.hz
    report['perframe_hz_both_cores'] = finite_or_none(perframe_hz, 3)
    by_name = runtime_evaluator.results(perframe_hz)
    for entry in report['operating_points']:
        if entry['name'] == BASELINE.name:
            entry.update(runtime_hz=report['perframe_hz_both_cores'], runtime_speedup=1.0,
                         runtime_miou=entry['miou'])
        else:
            entry.update(by_name.get(entry['name'], {}))
