"""evs_ros.data: synthetic benchmark, Cityscapes-layout and video I/O, labels and metrics.

Modules: ``labels`` (19 Cityscapes train classes, palette), ``synth`` (procedural benchmark with
exact labels and flow), ``cityscapes`` (dataset layout reader/writer), ``video`` (files in/out),
``metrics`` (confusion matrix, IoU). Import them directly, e.g.
``from evs_ros.data.metrics import ConfusionMatrix``.
"""
