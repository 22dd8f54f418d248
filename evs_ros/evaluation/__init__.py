"""evs_ros.evaluation.

Operating points against per-frame segmentation (paper §4, Tables 1-2, Figures 6-7), on annotated
snippets, with JSON-ready results, markdown and plots.

Modules: ``snippets`` (synthetic or Cityscapes-layout snippets in memory), ``operating_points``
(speed and accuracy of each operating point vs the per-frame baseline), ``figures`` (Figures
6-7), ``report`` (:func:`evaluate`, Table 1), ``markdown`` and ``plots`` (rendering).
"""

from evs_ros.evaluation.report import evaluate, model_class_names, table1
from evs_ros.evaluation.snippets import EvalSnippet, cityscapes_snippets, synthetic_snippets

__all__ = ['EvalSnippet', 'cityscapes_snippets', 'evaluate', 'model_class_names',
           'synthetic_snippets', 'table1']
