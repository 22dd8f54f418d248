"""The one table of network backends.

Every ``model.backend`` SPEC kind, what it names, how it loads and which engines run it.

Read by the SPEC parser (:func:`split_spec`, ``evs_ros/models/backends.py``), the ``model.backend``
help of the ROS parameter and of every ``--backend`` flag (:func:`spec_usage`), the README table
(:func:`markdown_table`; a test keeps README in step) and the engines (``engines`` below,
``evs_ros/models/loading.py``). A new backend is one row here plus its loader function.

``engines`` says how ``model.engine`` applies to a kind:

- ``export``: a torch network; every engine runs it (exported to ONNX on first use and cached,
  ``evs_ros/models/graph.py``); one that fails to export runs on torch with one line.
- ``onnx``: an ONNX file; OpenVINO, ONNX Runtime and TensorRT run the file itself (``torch`` has
  no ONNX runtime of its own: ONNX Runtime, else OpenCV DNN).
- ``torch``: runs on torch only; other engines fall back to torch with one line.
- ``none``: a Python callable or a labels-only file run as they are; ``model.engine`` does not
  apply (one line says so when an engine is asked for).
- ``alias``: resolves to another SPEC before loading (its row decides).
"""

from dataclasses import dataclass
from typing import Dict, List, Tuple

ENGINE_SUPPORT = ('export', 'onnx', 'torch', 'none', 'alias')


@dataclass(frozen=True)
class BackendKind:
    """One row of the table.

    Attributes:
        kind: the SPEC prefix before the first ``:``.
        usage: the SPEC forms, e.g. ``icnet:PATH|default``.
        network: what it names (README, ``--help``).
        loader: ``module:function`` building the model from the text after ``kind:``
            (``function(rest, device, fp16)``); empty for aliases.
        engines: one of :data:`ENGINE_SUPPORT`.
        classes: where the class names come from.
    """

    kind: str
    usage: str
    network: str
    loader: str
    engines: str
    classes: str


BACKENDS: Tuple[BackendKind, ...] = (
    BackendKind('auto', 'auto',
                'the default: the best real network in the weights cache '
                '(`espnetv2-s2-cityscapes`, then `-s1`), else the shipped ICNet with one warning '
                'naming `evs weights get`', '', 'alias', 'those of the network it picks'),
    BackendKind('icnet', 'icnet:PATH|default',
                'our ICNet checkpoint (`evs train`, `evs convert`) or an official '
                '`.caffemodel`; `icnet:default` = the shipped ICNet (synthetic streets only)',
                'evs_ros.models.backends:load_icnet_spec', 'export',
                "the checkpoint's `class_names`"),
    BackendKind('espnet', 'espnet:PATH',
                'a published ESPNetv2 segmentation state_dict (sacmehta/EdgeNets, e.g. the '
                'Cityscapes `espnetv2_s_2.0_city_1024x512.pth`; `evs_ros/models/espnet.py`)',
                'evs_ros.models.backends:load_espnet_spec', 'export',
                'Cityscapes (the published weights)'),
    BackendKind('hf', 'hf:MODEL',
                'a Hugging Face `transformers` network: SegFormer, UperNet, Mask2Former, '
                'MaskFormer; MODEL is a `save_pretrained` directory or a hub id read from the '
                'local Hugging Face cache only',
                'evs_ros.models.hf:load_hf_model', 'export', "`config.json`'s `id2label`"),
    BackendKind('weights', 'weights:NAME',
                'a catalogue entry (`evs weights list`) fetched with `evs weights get NAME`',
                '', 'alias', 'those of the SPEC it resolves to'),
    BackendKind('onnx', 'onnx:PATH',
                'an ONNX file (e.g. `evs export`): input float32 (1, 3, H, W) BGR in [0, 255], '
                'outputs `probs` (1, C, h, w) and optionally `features`',
                'evs_ros.models.backends:load_onnx_spec', 'onnx',
                '`NAME.classes.txt` next to `NAME.onnx`'),
    BackendKind('torchscript', 'torchscript:PATH',
                'a TorchScript file written by `evs export` (same input and outputs)',
                'evs_ros.models.backends:load_torchscript_spec', 'export',
                "`NAME.classes.txt`, else the file's `evs_meta.json`"),
    BackendKind('tflite', 'tflite:PATH',
                "a TensorFlow Lite network with a uint8 RGB input, e.g. Coral's int8 DeepLabv3 "
                'for Cityscapes (LiteRT; a label-map output is labels-only: R is off; '
                '`evs_ros/models/tflite.py`)',
                'evs_ros.models.backends:load_tflite_spec', 'none',
                '`NAME.classes.txt` next to `NAME.tflite`, else Cityscapes trainIds'),
    BackendKind('python', 'python:MODULE:FACTORY',
                '`FACTORY()` returns a callable BGR uint8 HxWx3 -> float32 probabilities '
                '(C, h, w) with a `num_classes` attribute',
                'evs_ros.models.backends:load_python_spec', 'none',
                "the object's `class_names`"),
)
"""Every backend kind, in the order README and ``--help`` list them."""

ENGINE_SUPPORT_TEXT: Dict[str, str] = {
    'export': 'every engine (exported on first use, cached)',
    'onnx': 'OpenVINO, ONNX Runtime, TensorRT (the file itself)',
    'torch': 'torch only (other engines fall back with one line)',
    'none': 'runs as it is (model.engine does not apply)',
    'alias': 'as the SPEC it resolves to',
}


def backend_kinds() -> Dict[str, BackendKind]:
    """``{kind: row}`` of :data:`BACKENDS`."""
    return {row.kind: row for row in BACKENDS}


def spec_usage(aliases: bool = True) -> str:
    """'auto, icnet:PATH|default, hf:MODEL, ...'.

    Every SPEC form, for help texts and errors (without ``auto`` when not ``aliases``).
    """
    return ', '.join(row.usage for row in BACKENDS if aliases or ':' in row.usage)


def split_spec(spec: str) -> Tuple[str, str]:
    """'kind:rest' -> (kind, rest).

    ValueError listing the valid forms otherwise (``auto`` is resolved before:
    ``evs_ros.models.loading.resolve_backend_spec``).
    """
    kind, sep, rest = str(spec).partition(':')
    if not sep or kind not in backend_kinds() or not rest:
        raise ValueError(f'backend SPEC {spec!r} is not one of {spec_usage()}')
    return kind, rest


def markdown_table() -> List[str]:
    """Return README's table of backends, one row per kind."""
    lines = ['| SPEC | network | engines | class names |', '|---|---|---|---|']
    for row in BACKENDS:
        usage = row.usage.replace('|', '\\|')  # a pipe inside a table cell
        lines.append(f'| `{usage}` | {row.network} | {ENGINE_SUPPORT_TEXT[row.engines]} | '
                     f'{row.classes} |')
    return lines
