"""Paper Figures 6 and 7: pure label propagation and IAM's inconsistent fraction.

Figure 6 (:class:`PropagationStudy`): pure label propagation (W on, R off) from a keyframe N
frames before the annotated frame, N = 0..max, DIS vs Farneback. Figure 7: IAM's inconsistent
fraction after 1, 2 and 4 propagations, collected from the DIS runs of Figure 6.
"""

import math
from dataclasses import replace
from typing import Dict, List, Mapping, Optional

import numpy as np

from evs_ros.config import EvsConfig, FlowConfig, OperatingPoint
from evs_ros.data.json_values import finite_or_none
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.evaluation.snippets import EvalSnippet, Scoring
from evs_ros.pipeline.pipeline import EvsPipeline
from evs_ros.pipeline.stats import percentiles

FIGURE7_PROPAGATIONS = (1, 2, 4)
FIGURE7_BINS_PERCENT = tuple(float(edge) for edge in np.arange(0.0, 10.5, 0.5)) + (100.0,)


class PropagationStudy:
    """Figures 6 and 7: pure label propagation (W on, R off) from keyframes N frames back.

    Args:
        model: the ``SegmentationModel`` giving the keyframe labels.
        max_propagations: largest N (the annotated frame is N frames after the keyframe).
        methods: flow methods compared (``FlowConfig.method``), when ``flows`` is not given.
        config: flow / IAM settings; its flow method is replaced per method.
        scoring: the ground truth's classes (default: Cityscapes' 19).
        flows: ``{label: FlowConfig}`` compared instead of ``methods`` (e.g. flow scales). Figure
            7 is collected from the first one.
    """

    def __init__(self, model, max_propagations: int = 10, methods=('dis', 'farneback'),
                 config: EvsConfig = EvsConfig(), scoring: Optional[Scoring] = None,
                 flows: Optional[Mapping[str, FlowConfig]] = None):
        self.max_propagations = int(max_propagations)
        if flows is None:
            flows = {method: replace(config.flow, method=method) for method in methods}
        self._pipelines = {label: EvsPipeline(replace(config, flow=flow), model)
                           for label, flow in flows.items()}
        self._fraction_label = next(iter(flows))
        scoring = scoring or Scoring(tuple(CLASS_NAMES))
        self._confusions = {(label, n): scoring.confusion() for label in flows
                            for n in range(self.max_propagations + 1)}
        self._fractions: Dict[int, List[float]] = {k: [] for k in FIGURE7_PROPAGATIONS}
        self._flow_ms: Dict[str, List[float]] = {label: [] for label in flows}

    @staticmethod
    def propagation_op(propagations: int) -> OperatingPoint:
        """W on, R off, keyframe every N+1 frames: the frame N after a keyframe is the last."""
        return OperatingPoint(name=f'PROP{propagations}', downscale=1.0,
                              keyframe_interval=propagations + 1, warp=True, refine=False)

    def add(self, snippet: EvalSnippet) -> None:
        """Propagate from every start ``annotated - N`` (N = 0..max) with every method.

        Labelled video: from keyframes every ``max + 1`` frames, scoring each frame at its
        distance.
        """
        if snippet.every_frame_labelled:
            self._add_labelled_video(snippet)
            return
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
                self._flow_ms[method] += [info.flow_ms for info in infos if info.flow_ms > 0]
                if method == self._fraction_label:
                    self._collect_fractions(infos)

    def _add_labelled_video(self, snippet: EvalSnippet) -> None:
        span = self.max_propagations + 1
        for method, pipeline in self._pipelines.items():
            pipeline.set_operating_point(self.propagation_op(self.max_propagations))
            for start in range(0, len(snippet.frames), span):
                pipeline.reset()
                infos = []
                for n, index in enumerate(range(start, min(start + span, len(snippet.frames)))):
                    result = pipeline.process(snippet.frames[index])
                    infos.append(result.info)
                    self._confusions[(method, n)].update(result.labels,
                                                         snippet.labels_all[index])
                self._flow_ms[method] += [info.flow_ms for info in infos if info.flow_ms > 0]
                if method == self._fraction_label:
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
            methods[method] = {'miou': [finite_or_none(v) for v in mious],
                               'flow_ms_p50': percentiles(self._flow_ms[method])['p50']}
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
                'mean_percent': finite_or_none(float(percent.mean()) if len(percent) else None),
                'median_percent': finite_or_none(
                    float(np.median(percent)) if len(percent) else None),
                'below_5_percent': finite_or_none(
                    float((percent < 5.0).mean()) if len(percent) else None),
                'fractions': [round(float(v), 6) for v in values],
            }
        return {'propagations': list(FIGURE7_PROPAGATIONS), 'bin_edges_percent': edges,
                'by_propagations': entries}
