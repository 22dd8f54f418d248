"""Typed configuration: the one source of truth for every setting of evs_ros.

One frozen dataclass per concern. The ROS node (``evs_ros/ros/params.py``), the ``evs`` command
line and the benchmark all build their settings through :func:`config_from_flat`, so they cannot
drift apart. Every field that maps to a ROS parameter has a non-``None`` default (rclpy infers a
parameter's type from its default). Validation lives in ``__post_init__`` and raises a
``ValueError`` that says what to change.

Paper references point into *Efficient Video Semantic Segmentation with Labels Propagation and
Refinement* (Paul et al.): operating points are its Table 2, DIS parameters its §4.3.1.
"""

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Mapping

DIS_PRESETS = ('ultrafast', 'fast', 'medium', 'custom')
FLOW_METHODS = ('dis', 'farneback')
DEVICES = ('auto', 'cpu', 'cuda')
QOS_RELIABILITY = ('best_effort', 'reliable')


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_choice(name: str, value: str, choices) -> None:
    _check(value in choices, f'{name}={value!r} is not one of {", ".join(choices)}')


@dataclass(frozen=True)
class FlowConfig:
    """Dense optical flow between consecutive frames (paper §3.3, §4.3).

    ``dis_preset='ultrafast'`` is the paper's setting (finest scale 2, patch 8, stride 4,
    12 gradient-descent iterations, no variational refinement). With ``'custom'`` the explicit
    fields below are used; with any other preset they are ignored.
    """

    method: str = 'dis'
    dis_preset: str = 'ultrafast'
    finest_scale: int = 2
    patch_size: int = 8
    patch_stride: int = 4
    gd_iterations: int = 12
    variational_refinement_iterations: int = 0
    scale: float = 1.0
    """Flow is computed on frames resized by this factor, then resized back (1.0 = native)."""

    def __post_init__(self):
        _check_choice('flow.method', self.method, FLOW_METHODS)
        _check_choice('flow.dis_preset', self.dis_preset, DIS_PRESETS)
        _check(self.finest_scale >= 0, 'flow.finest_scale must be >= 0')
        _check(self.patch_size >= 2, 'flow.patch_size must be >= 2')
        _check(1 <= self.patch_stride <= self.patch_size,
               'flow.patch_stride must be in [1, flow.patch_size]')
        _check(self.gd_iterations >= 1, 'flow.gd_iterations must be >= 1')
        _check(self.variational_refinement_iterations >= 0,
               'flow.variational_refinement_iterations must be >= 0')
        _check(0.05 <= self.scale <= 1.0, 'flow.scale must be in [0.05, 1.0]')


@dataclass(frozen=True)
class IamConfig:
    """Inconsistencies Attention Module (paper §3.4, eq. 3-4).

    The mask is computed at the probability resolution (1/4 of the network input, like the
    paper's 512x256) and resized for output.
    """

    dilation_px: int = 3
    """Radius of the square dilation applied to the binary inconsistency mask (0 = none)."""
    smoothing_px: int = 5
    """Side of the box blur applied after dilation (odd; 1 = none)."""
    backward_flow: str = 'negated'
    """'negated': approximate flow prev->cur by -(flow cur->prev), no extra DIS;
    'dis': compute the backward flow with a second DIS call (exact, about 2x flow cost)."""

    def __post_init__(self):
        _check(0 <= self.dilation_px <= 64, 'iam.dilation_px must be in [0, 64]')
        _check(self.smoothing_px >= 1 and self.smoothing_px % 2 == 1,
               'iam.smoothing_px must be an odd number >= 1')
        _check_choice('iam.backward_flow', self.backward_flow, ('negated', 'dis'))


@dataclass(frozen=True)
class OperatingPoint:
    """An operating point (paper Table 2): D, S, W, R plus the adaptive keyframe policy.

    ``downscale`` (D) scales the frame fed to the segmentation network; ``keyframe_interval``
    (S) runs the network on every S-th frame; ``warp`` (W) propagates labels with optical flow
    (off = hold the last labels); ``refine`` (R) runs IAM + Refiner on propagated frames.
    With ``adaptive`` a keyframe is forced when IAM's inconsistent fraction, summed over the
    frames propagated since the last keyframe, exceeds ``adaptive_threshold``, and never later
    than ``max_keyframe_interval`` frames; S is then ignored.
    """

    name: str = 'EVS05'
    downscale: float = 1.0
    keyframe_interval: int = 3
    warp: bool = True
    refine: bool = False
    adaptive: bool = False
    adaptive_threshold: float = 0.01
    max_keyframe_interval: int = 10

    def __post_init__(self):
        _check(0.1 <= self.downscale <= 1.0, 'operating_point.downscale (D) must be in [0.1, 1]')
        _check(1 <= self.keyframe_interval <= 1000,
               'operating_point.keyframe_interval (S) must be in [1, 1000]')
        _check(0.0 <= self.adaptive_threshold <= 1.0,
               'operating_point.adaptive_threshold must be a fraction in [0, 1]')
        _check(1 <= self.max_keyframe_interval <= 1000,
               'operating_point.max_keyframe_interval (S_max) must be in [1, 1000]')
        _check(not (self.refine and not self.warp),
               'operating_point.refine (R) needs warp (W): refinement works on warped labels')


def _op(name, d, s, w, r):
    return OperatingPoint(name=name, downscale=d, keyframe_interval=s, warp=w, refine=r)


# Paper Table 2, exactly: name -> (D, S, W, R).
OPERATING_POINTS: Dict[str, OperatingPoint] = {op.name: op for op in (
    _op('EVS01', 1.0, 1, True, True),
    _op('EVS02', 1.0, 2, True, True),
    _op('EVS03', 1.0, 2, True, False),
    _op('EVS04', 1.0, 3, True, True),
    _op('EVS05', 1.0, 3, True, False),
    _op('EVS06', 1.0, 5, True, True),
    _op('EVS07', 1.0, 5, True, False),
    _op('EVS08', 1.0, 5, False, False),
    _op('EVS09', 0.5, 5, False, False),
    _op('EVS10', 1.0, 10, True, False),
    _op('EVS11', 1.0, 10, False, False),
    _op('EVS12', 0.5, 10, True, False),
    _op('EVS13', 0.5, 10, False, False),
    _op('EVS14', 0.5, 17, True, False),
    # Not in the paper (its §5 future work): keyframe when propagation becomes unreliable.
    OperatingPoint(name='ADAPTIVE', downscale=1.0, keyframe_interval=10, warp=True,
                   refine=False, adaptive=True, adaptive_threshold=0.01,
                   max_keyframe_interval=10),
)}
# The per-frame baseline: the network on every frame, nothing propagated.
BASELINE = OperatingPoint(name='PERFRAME', downscale=1.0, keyframe_interval=1, warp=False,
                          refine=False)


def operating_point(name: str) -> OperatingPoint:
    """Return the preset called ``name`` (case-insensitive, 'EVS5' == 'EVS05')."""
    key = name.strip().upper()
    if key.startswith('EVS') and key[3:].isdigit():
        key = f'EVS{int(key[3:]):02d}'
    if key == BASELINE.name:
        return BASELINE
    if key not in OPERATING_POINTS:
        raise ValueError(f'unknown operating point {name!r}; choose one of '
                         f'{", ".join(OPERATING_POINTS)} or {BASELINE.name}')
    return OPERATING_POINTS[key]


@dataclass(frozen=True)
class ModelConfig:
    """Segmentation network and Refiner.

    ``backend`` is one SPEC string used everywhere: ``icnet:PATH``, ``torchscript:PATH``,
    ``onnx:PATH`` or ``python:MODULE:FACTORY``; ``icnet:default`` is the shipped weights.
    ``refiner`` is a checkpoint path, ``'default'`` (shipped) or ``''`` (no Refiner: R acts as
    off).
    """

    backend: str = 'icnet:default'
    refiner: str = 'default'
    device: str = 'auto'
    fp16: bool = False
    palette_file: str = ''
    """YAML/JSON with ``names`` and ``colors`` (RGB); empty = Cityscapes 19 classes."""

    def __post_init__(self):
        _check(':' in self.backend, f'model.backend={self.backend!r} is not a SPEC like '
               'icnet:PATH, torchscript:PATH, onnx:PATH or python:MODULE:FACTORY')
        _check_choice('model.device', self.device, DEVICES)


@dataclass(frozen=True)
class RuntimeConfig:
    """Real-time runtime: two workers (flow on CPU, inference on the accelerator), paper §3.1."""

    flow_threads: int = 1
    """OpenCV threads of the flow worker (cv2.setNumThreads)."""
    inference_threads: int = 1
    """torch intra-op threads of the inference worker (torch.set_num_threads)."""
    input_queue_size: int = 1
    """Latest-frame buffer length: older unprocessed frames are dropped and counted."""

    def __post_init__(self):
        _check(1 <= self.flow_threads <= 64, 'runtime.flow_threads must be in [1, 64]')
        _check(1 <= self.inference_threads <= 64, 'runtime.inference_threads must be in [1, 64]')
        _check(1 <= self.input_queue_size <= 64, 'runtime.input_queue_size must be in [1, 64]')


@dataclass(frozen=True)
class PublishConfig:
    """Which ROS outputs are produced and with which QoS (ROS node only)."""

    labels: bool = True
    labels_color: bool = True
    overlay: bool = True
    inconsistency_mask: bool = True
    status: bool = True
    diagnostics: bool = True
    overlay_alpha: float = 0.5
    qos_reliability: str = 'best_effort'
    """Reliability of the output publishers."""
    qos_depth: int = 1
    input_qos_reliability: str = 'best_effort'
    """Reliability of the image subscription. best_effort (sensor data) receives from both
    best-effort and reliable camera drivers; reliable receives only from reliable ones."""
    subscribe_compressed: bool = False

    def __post_init__(self):
        _check(0.0 <= self.overlay_alpha <= 1.0, 'publish.overlay_alpha must be in [0, 1]')
        _check_choice('publish.qos_reliability', self.qos_reliability, QOS_RELIABILITY)
        _check_choice('publish.input_qos_reliability', self.input_qos_reliability,
                      QOS_RELIABILITY)
        _check(1 <= self.qos_depth <= 100, 'publish.qos_depth must be in [1, 100]')


@dataclass(frozen=True)
class EvsConfig:
    """Everything, grouped by concern. Dotted names (``flow.scale``) address single fields."""

    operating_point: OperatingPoint = field(default_factory=lambda: operating_point('EVS05'))
    flow: FlowConfig = field(default_factory=FlowConfig)
    iam: IamConfig = field(default_factory=IamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)


SECTIONS = {f.name: f.type for f in fields(EvsConfig)}


def to_flat(config: EvsConfig) -> Dict[str, Any]:
    """Flatten to dotted names: ``{'flow.scale': 1.0, ...}`` (the ROS parameter names)."""
    flat = {}
    for section, values in asdict(config).items():
        for key, value in values.items():
            flat[f'{section}.{key}'] = value
    return flat


def config_from_flat(values: Mapping[str, Any], base: EvsConfig = None) -> EvsConfig:
    """Build a validated config from dotted names over ``base`` (default: all defaults).

    ``operating_point.preset`` (a Table 2 name) is applied first; explicit
    ``operating_point.*`` fields then override it. Unknown names raise ``ValueError``.
    """
    config = base or EvsConfig()
    values = dict(values)
    preset = values.pop('operating_point.preset', None)
    if preset:
        config = replace(config, operating_point=operating_point(preset))
    grouped: Dict[str, Dict[str, Any]] = {}
    for name, value in values.items():
        section, _, key = name.partition('.')
        current = getattr(config, section, None) if section in _SECTION_NAMES else None
        if current is None or key not in {f.name for f in fields(current)}:
            raise ValueError(f'unknown setting {name!r}; known: '
                             f'{", ".join(sorted(to_flat(EvsConfig())))}')
        grouped.setdefault(section, {})[key] = _coerce(current, key, value)
    changes = {s: replace(getattr(config, s), **kv) for s, kv in grouped.items()}
    return replace(config, **changes)


_SECTION_NAMES = ('operating_point', 'flow', 'iam', 'model', 'runtime', 'publish')


def _coerce(section_obj, key: str, value: Any) -> Any:
    """Convert YAML/CLI values to the field's type (int 1 -> 1.0 for floats, 'true' -> True)."""
    default = getattr(section_obj, key)
    if isinstance(default, bool):
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ('true', 'false', '1', '0', 'yes', 'no', 'on', 'off'):
                raise ValueError(f'{key}={value!r} is not a boolean')
            return lowered in ('true', '1', 'yes', 'on')
        return bool(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f'{key}={value!r} must be an integer')
        return int(value)
    return str(value)


def load_yaml(path: str, node_name: str = 'evs_node') -> EvsConfig:
    """Read a ROS-style params file (``node: ros__parameters: {...}``) into an EvsConfig.

    Nested mappings and dotted keys are both accepted; ``/**`` wildcards are honoured.
    """
    import yaml
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    params = {}
    for key in ('/**', node_name, '/' + node_name):
        section = document.get(key, {})
        params.update(_flatten(section.get('ros__parameters', {})))
    if not params and 'ros__parameters' not in str(document):
        params = _flatten(document)
    return config_from_flat({k: v for k, v in params.items() if k.split('.')[0] in
                             _SECTION_NAMES})


def _flatten(mapping: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


# Human-readable description and allowed range of every dotted setting: the ROS parameter
# descriptors, the CLI help and the docs all read this table. Ranges mirror __post_init__ checks.
PARAMETER_INFO: Dict[str, tuple] = {
    'operating_point.name': ('name reported in status (set by the preset)', None),
    'operating_point.downscale': ('D: scale of the frame fed to the network', (0.1, 1.0)),
    'operating_point.keyframe_interval': ('S: run the network every S-th frame', (1, 1000)),
    'operating_point.warp': ('W: propagate labels with optical flow (off = hold)', None),
    'operating_point.refine': ('R: repair propagated frames with IAM + Refiner', None),
    'operating_point.adaptive': ('keyframe when IAM inconsistency exceeds the threshold', None),
    'operating_point.adaptive_threshold': ('adaptive: inconsistent fraction, summed since the '
                                           'keyframe, that forces a new one', (0.0, 1.0)),
    'operating_point.max_keyframe_interval': ('adaptive: S_max, longest run without a keyframe',
                                              (1, 1000)),
    'flow.method': ('dis (paper) or farneback (paper Fig. 6 comparison)', None),
    'flow.dis_preset': ('ultrafast (paper), fast, medium or custom', None),
    'flow.finest_scale': ('DIS custom: finest pyramid scale', (0, 10)),
    'flow.patch_size': ('DIS custom: patch size in pixels', (2, 64)),
    'flow.patch_stride': ('DIS custom: patch stride in pixels', (1, 64)),
    'flow.gd_iterations': ('DIS custom: gradient-descent iterations', (1, 1000)),
    'flow.variational_refinement_iterations': ('DIS custom: variational refinement iterations '
                                               '(0 = off)', (0, 100)),
    'flow.scale': ('compute flow on frames resized by this factor', (0.05, 1.0)),
    'iam.dilation_px': ('IAM: dilation radius of the inconsistency mask', (0, 64)),
    'iam.smoothing_px': ('IAM: box-blur size after dilation (odd)', (1, 63)),
    'iam.backward_flow': ('IAM: negated (no extra flow) or dis (exact backward flow)', None),
    'model.backend': ('network SPEC: icnet:PATH|default, torchscript:PATH, onnx:PATH, '
                      'python:MODULE:FACTORY', None),
    'model.refiner': ('Refiner checkpoint, default (shipped) or empty for none', None),
    'model.device': ('auto, cpu or cuda', None),
    'model.fp16': ('half precision on CUDA', None),
    'model.palette_file': ('YAML/JSON with class names and RGB colours (empty = Cityscapes)',
                           None),
    'runtime.flow_threads': ('OpenCV threads of the flow worker', (1, 64)),
    'runtime.inference_threads': ('torch threads of the inference worker', (1, 64)),
    'runtime.input_queue_size': ('latest-frame buffer length (older frames are dropped)',
                                 (1, 64)),
    'publish.labels': ('publish labels (mono8 trainIds)', None),
    'publish.labels_color': ('publish labels_color (rgb8)', None),
    'publish.overlay': ('publish overlay (rgb8 image blended with colours)', None),
    'publish.inconsistency_mask': ('publish inconsistency_mask (mono8, IAM)', None),
    'publish.status': ('publish status (evs_ros/FrameStatus, per frame)', None),
    'publish.diagnostics': ('publish /diagnostics summaries', None),
    'publish.overlay_alpha': ('weight of the colours in the overlay', (0.0, 1.0)),
    'publish.qos_reliability': ('outputs: best_effort (sensor data) or reliable', None),
    'publish.input_qos_reliability': ('image subscription: best_effort (sensor data, matches '
                                      'any camera driver) or reliable', None),
    'publish.qos_depth': ('history depth of subscriptions and publishers', (1, 100)),
    'publish.subscribe_compressed': ('also subscribe image/compressed', None),
}

# Settings that need a restart of the node (they rebuild models or subscriptions).
RESTART_REQUIRED = frozenset(
    name for name in PARAMETER_INFO
    if name.startswith(('model.', 'runtime.'))
    or name in ('publish.qos_reliability', 'publish.qos_depth', 'publish.input_qos_reliability',
                'publish.subscribe_compressed'))
