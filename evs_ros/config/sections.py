"""The config sections (frozen dataclasses), the paper's operating points, and the whole config.

Paper references point into *Efficient Video Semantic Segmentation with Labels Propagation and
Refinement* (Paul et al.): operating points are its Table 2, DIS parameters its §4.3.1.
"""

from dataclasses import dataclass, field, fields, replace
from typing import Dict, Optional, Tuple

from evs_ros.config.backends import spec_usage
from evs_ros.config.fields import (
    DEVICES, DIS_PRESETS, ENGINES, FLOW_METHODS, PRECISIONS, QOS_RELIABILITY, UPSAMPLING,
    ParameterInfo, check, setting, validate_fields,
)


@dataclass(frozen=True)
class FlowConfig:
    """Dense optical flow between consecutive frames (paper §3.3, §4.3).

    ``dis_preset='ultrafast'`` is the paper's setting (finest scale 2, patch 8, stride 4,
    12 gradient-descent iterations, no variational refinement). With ``'custom'`` the explicit
    fields below are used; with any other preset they are ignored.
    """

    method: str = setting('dis', 'dis (paper) or farneback (paper Fig. 6 comparison)',
                          choices=FLOW_METHODS)
    dis_preset: str = setting('ultrafast', 'ultrafast (paper), fast, medium or custom',
                              choices=DIS_PRESETS)
    finest_scale: int = setting(2, 'DIS custom: finest pyramid scale', (0, 10))
    patch_size: int = setting(8, 'DIS custom: patch size in pixels', (2, 64))
    patch_stride: int = setting(4, 'DIS custom: patch stride in pixels (<= patch_size)', (1, 64))
    gd_iterations: int = setting(12, 'DIS custom: gradient-descent iterations', (1, 1000))
    variational_refinement_iterations: int = setting(
        0, 'DIS custom: variational refinement iterations (0 = off)', (0, 100))
    scale: float = setting(1.0, 'compute flow on frames resized by this factor, then resize the '
                           'flow back (1.0 = native)', (0.05, 1.0))
    max_width: int = setting(1024, 'compute flow on frames at most this wide (a 2048 px camera: '
                             'half size; docs/benchmarks.md section 8); 0 = no cap; flow is '
                             'never computed on frames narrower than 256 px', (0, 16384))
    labels_from: str = setting(
        'keyframe', 'warp the labels from the previous frame at camera resolution (paper eq. 1) '
        'or from the keyframe through the flows composed since it, at the probability '
        'resolution (one resampling in all, no camera-size flow)',
        choices=('previous', 'keyframe'))

    def __post_init__(self):
        validate_fields('flow', self)
        check(self.patch_stride <= self.patch_size,
              f'flow.patch_stride={self.patch_stride}: must be <= flow.patch_size '
              f'({self.patch_size})')


@dataclass(frozen=True)
class IamConfig:
    """Inconsistencies Attention Module (paper §3.4, eq. 3-4).

    The mask is computed at the probability resolution (1/4 of the network input, like the
    paper's 512x256) and resized for output.
    """

    dilation_px: int = setting(3, 'IAM: radius of the square dilation of the inconsistency mask '
                               '(0 = none)', (0, 64))
    smoothing_px: int = setting(5, 'IAM: side of the box blur after dilation (odd; 1 = none)',
                                (1, 63))
    backward_flow: str = setting('negated', 'IAM: negated (prev->cur flow approximated by '
                                 '-(cur->prev), no extra DIS) or dis (exact, about 2x flow cost)',
                                 choices=('negated', 'dis'))

    def __post_init__(self):
        validate_fields('iam', self)
        check(self.smoothing_px % 2 == 1,
              f'iam.smoothing_px={self.smoothing_px}: must be an odd number >= 1')


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

    name: str = setting('EVS05', 'name reported in status (set by the preset)')
    downscale: float = setting(1.0, 'D: scale of the frame fed to the network', (0.1, 1.0))
    keyframe_interval: int = setting(3, 'S: run the network every S-th frame', (1, 1000))
    warp: bool = setting(True, 'W: propagate labels with optical flow (off = hold)')
    refine: bool = setting(False, 'R: repair propagated frames with IAM + Refiner (needs W)')
    adaptive: bool = setting(False, 'keyframe when IAM inconsistency exceeds the threshold')
    adaptive_threshold: float = setting(
        0.01, 'adaptive: inconsistent fraction, summed since the keyframe, that forces a new one',
        (0.0, 1.0))
    max_keyframe_interval: int = setting(10, 'adaptive: S_max, longest run without a keyframe',
                                         (1, 1000))
    flow_scale: float = setting(0.0, 'flow on frames resized by this factor at this operating '
                                'point (0 = flow.scale)', (0.0, 1.0))

    def __post_init__(self):
        validate_fields('operating_point', self)
        check(self.flow_scale == 0.0 or self.flow_scale >= 0.05,
              f'operating_point.flow_scale={self.flow_scale}: must be 0 (use flow.scale) or in '
              '[0.05, 1.0]')
        check(not (self.refine and not self.warp),
              'operating_point.refine=True: needs operating_point.warp=True (R refines warped '
              'labels)')

    @property
    def preset_name(self) -> str:
        """The preset this operating point starts from (``EVS05`` for ``EVS05+custom``)."""
        return self.name.split('+')[0]

    def named_after(self, preset: 'OperatingPoint') -> 'OperatingPoint':
        """Return it named ``preset.name``, with ``+custom`` when a field differs from it."""
        same = all(getattr(self, name) == getattr(preset, name) for name in OPERATING_POINT_FIELDS)
        return replace(self, name=preset.name if same else f'{preset.name}+custom')


OPERATING_POINT_FIELDS = tuple(f.name for f in fields(OperatingPoint) if f.name != 'name')
"""What an operating point sets (D, S, W, R, adaptive policy, flow scale): all but the name."""


def _op(name, d, s, w, r, flow_scale=0.0):
    return OperatingPoint(name=name, downscale=d, keyframe_interval=s, warp=w, refine=r,
                          flow_scale=flow_scale)


# Paper Table 2, exactly: name -> (D, S, W, R). The fastest points with W on also compute flow on
# quarter-size frames: the propagations they add cost at most a few points against the paper's
# accuracy budget for them (docs/benchmarks.md section 8).
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
    _op('EVS10', 1.0, 10, True, False, flow_scale=0.25),
    _op('EVS11', 1.0, 10, False, False),
    _op('EVS12', 0.5, 10, True, False, flow_scale=0.25),
    _op('EVS13', 0.5, 10, False, False),
    _op('EVS14', 0.5, 17, True, False, flow_scale=0.25),
    # Not in the paper (its §5 future work): keyframe when propagation becomes unreliable.
    OperatingPoint(name='ADAPTIVE', downscale=1.0, keyframe_interval=10, warp=True,
                   refine=False, adaptive=True, adaptive_threshold=0.01,
                   max_keyframe_interval=10),
)}
# The per-frame baseline: the network on every frame, nothing propagated.
BASELINE = OperatingPoint(name='PERFRAME', downscale=1.0, keyframe_interval=1, warp=False,
                          refine=False)
PRESET_NAMES = tuple(OPERATING_POINTS) + (BASELINE.name,)


def operating_point(name: str) -> OperatingPoint:
    """Return the preset called ``name`` (case-insensitive, 'EVS5' == 'EVS05')."""
    key = canonical_preset_name(name)
    if key == BASELINE.name:
        return BASELINE
    if key not in OPERATING_POINTS:
        raise ValueError(f'operating_point.preset={name!r}: must be one of '
                         f'{", ".join(PRESET_NAMES)}')
    return OPERATING_POINTS[key]


def canonical_preset_name(name: str) -> str:
    """'evs5' -> 'EVS05', 'adaptive' -> 'ADAPTIVE' (unknown names upper-cased, unchecked)."""
    key = str(name).strip().upper()
    if key.startswith('EVS') and key[3:].isdigit():
        key = f'EVS{int(key[3:]):02d}'
    return key


@dataclass(frozen=True)
class ModelConfig:
    """Segmentation network and Refiner, and the engine that runs them (read at start-up).

    ``backend`` is one SPEC string used everywhere (the kinds: ``evs_ros/config/backends.py``);
    ``icnet:default`` is the shipped weights; ``auto`` (the default) is the best real network in
    the weights cache (``evs weights get espnetv2-s2-cityscapes``), else the shipped weights with
    a warning. ``refiner`` is a checkpoint path, ``'default'`` (the shipped Refiner trained for
    the network in use, recognised by the sha256 of its weights: the shipped ICNet and ESPNetv2
    s=2.0 Cityscapes have one; any other network runs with R off and one warning) or ``''`` (no
    Refiner: R acts as off). ``engine`` runs both networks (``evs_ros/models/engines.py``);
    ``precision`` ``auto`` is fp16 with ``fp16`` and fp32 otherwise.
    """

    backend: str = setting('auto', f'network SPEC: {spec_usage()}', restart=True)
    refiner: str = setting('default', 'Refiner checkpoint, default (the shipped one of the '
                           'network, if any) or empty for none', restart=True)
    device: str = setting('auto', 'auto, cpu or cuda', choices=DEVICES, restart=True)
    fp16: bool = setting(False, 'half precision (CUDA; OpenVINO on CPUs with fp16 or bf16 '
                         'arithmetic); refused with one line where the engine has none',
                         restart=True)
    engine: str = setting('auto', 'inference engine of the network and the Refiner: auto '
                          '(OpenVINO on a CPU; on NVIDIA TensorRT when installed, else torch '
                          'CUDA), torch (eager, the reference), openvino, onnxruntime or '
                          'tensorrt', choices=ENGINES, restart=True)
    precision: str = setting('auto', 'arithmetic of the engine: auto (fp16 with model.fp16, '
                             'else fp32), fp32, fp16, bf16 (CPUs with bfloat16) or int8 '
                             '(OpenVINO + NNCF, calibrated on model.calibration)',
                             choices=PRECISIONS, restart=True)
    calibration: str = setting('', 'precision int8: the frames to calibrate on (a video file, a '
                               'ROS 2 bag or a folder of images)', restart=True)
    palette_file: str = setting('', 'YAML/JSON with class names and RGB colours (empty = the '
                                "network's classes: Cityscapes colours or generated ones)",
                                restart=True)
    input_short_side: int = setting(
        0, 'short side (px) of the frame the network sees at D=1: 0 = the scale it was trained '
        'at (its catalogue entry or the network; the camera size when unknown), -1 = the camera '
        "size, N = N px; the operating point's D scales from there", (-1, 16384), restart=True)
    window: str = setting(
        '', "'' = the whole frame; native = the sliding windows of the network's published "
        'evaluation (its catalogue entry); HxW = overlapping windows of HxW network-input px, '
        'probabilities averaged where they overlap', restart=True)
    upsample: str = setting(
        'nearest', 'keyframe labels at camera resolution: nearest (argmax at the network output, '
        'then nearest neighbour) or bilinear (probabilities upsampled, then argmax; how published '
        'figures are measured)', choices=UPSAMPLING, restart=True)

    def __post_init__(self):
        validate_fields('model', self)
        check(':' in self.backend or self.backend == 'auto',
              f'model.backend={self.backend!r}: must be auto or a SPEC like '
              f'{spec_usage(aliases=False)}')
        check(self.window in ('', 'native') or window_size(self.window) is not None,
              f'model.window={self.window!r}: must be empty (whole frame), native or HxW with '
              'H, W >= 32 (e.g. 1024x1024)')
        check(not self.fp16 or self.precision in ('auto', 'fp16'),
              f'model.fp16=true contradicts model.precision={self.precision}: set one of them')
        check(self.precision != 'int8' or self.calibration,
              'model.precision=int8 needs model.calibration: the frames to calibrate on (a '
              'video, a ROS 2 bag or a folder of images)')

    @property
    def effective_precision(self) -> str:
        """``precision`` with ``auto`` resolved: fp16 with ``fp16``, else fp32."""
        if self.precision == 'auto':
            return 'fp16' if self.fp16 else 'fp32'
        return self.precision


def window_size(text: str) -> Optional[Tuple[int, int]]:
    """'1024x512' -> (1024, 512) as (H, W); None unless both are integers >= 32."""
    height, sep, width = str(text).strip().lower().partition('x')
    if not sep or not (height.isdigit() and width.isdigit()):
        return None
    size = (int(height), int(width))
    return size if min(size) >= 32 else None


@dataclass(frozen=True)
class RuntimeConfig:
    """Real-time runtime: two workers (flow on CPU, inference on the accelerator), paper §3.1."""

    flow_threads: int = setting(1, 'OpenCV threads of the flow workers (cv2.setNumThreads, '
                                'process-wide)', (1, 64), restart=True)
    inference_threads: int = setting(1, 'torch intra-op threads of the inference worker',
                                     (1, 64), restart=True)
    input_queue_size: int = setting(1, 'latest-frame buffer length: older unprocessed frames are '
                                    'dropped and counted', (1, 64), restart=True)
    flow_prefetch_threads: int = setting(
        0, 'extra threads per stream that compute DIS for frames waiting in the buffer while the '
        'flow worker propagates (0 = the flow worker alone, as the paper)', (0, 16), restart=True)
    keyframe_priority: str = setting(
        'stalest', 'which stream the shared network serves first when several wait: stalest '
        '(the oldest labels) or round_robin', choices=('stalest', 'round_robin'), restart=True)
    keyframe_batch: int = setting(1, 'up to this many waiting keyframes of several cameras run '
                                  'in one network call (worthwhile on a GPU; networks with '
                                  'predict_batch: ICNet)', (1, 16), restart=True)
    wait_for_keyframes: bool = setting(
        False, 'before a stream requests a keyframe, wait for its previous one (honours S exactly '
        'when frames come faster than the network: offline runs, benchmarks); off: never wait, '
        'late keyframes are carried forward (live cameras)', restart=True)

    def __post_init__(self):
        validate_fields('runtime', self)


@dataclass(frozen=True)
class PublishConfig:
    """Which ROS outputs are produced and with which QoS (ROS node only)."""

    labels: bool = setting(True, 'publish labels (mono8 class ids)')
    labels_color: bool = setting(True, 'publish labels_color (rgb8)')
    overlay: bool = setting(True, 'publish overlay (rgb8 image blended with colours)')
    inconsistency_mask: bool = setting(True, 'publish inconsistency_mask (mono8, IAM)')
    status: bool = setting(True, 'publish status (evs_ros/FrameStatus, per frame)')
    diagnostics: bool = setting(True, 'publish /diagnostics summaries')
    diagnostics_stale_s: float = setting(3.0, '/diagnostics: STALE when no frame arrived for '
                                         'this long (no camera, or it stopped)', (0.1, 3600.0))
    diagnostics_min_output_ratio: float = setting(
        0.5, '/diagnostics: WARN when the output rate falls below this fraction of the accepted '
        'input rate (overload; 0 = never)', (0.0, 1.0))
    diagnostics_clear_frames: int = setting(30, '/diagnostics: a WARN (rejected input) or ERROR '
                                            '(network failure) clears after this many frames '
                                            'without one', (1, 100000))
    camera_info: bool = setting(True, 'republish the camera_info beside the image topic as '
                                "camera_info beside the labels, with each output's header (not "
                                'needed, and skipped, when the two are the same topic)')
    overlay_alpha: float = setting(0.5, 'weight of the colours in the overlay', (0.0, 1.0))
    qos_reliability: str = setting('reliable', 'outputs: reliable (REP-2003: serves reliable and '
                                   'best-effort subscribers) or best_effort',
                                   choices=QOS_RELIABILITY, restart=True)
    qos_depth: int = setting(1, 'history depth of subscriptions and publishers', (1, 100),
                             restart=True)
    input_qos_reliability: str = setting(
        'best_effort', 'image subscription: best_effort (sensor data, matches any camera driver) '
        'or reliable', choices=QOS_RELIABILITY, restart=True)
    subscribe_compressed: bool = setting(
        False, "subscribe <image>/compressed (sensor_msgs/CompressedImage, image_transport's "
        'compressed transport of the remapped image topic) instead of <image>', restart=True)

    def __post_init__(self):
        validate_fields('publish', self)


@dataclass(frozen=True)
class EvsConfig:
    """Everything, grouped by concern. Dotted names (``flow.scale``) address single fields."""

    operating_point: OperatingPoint = field(default_factory=lambda: operating_point('EVS05'))
    flow: FlowConfig = field(default_factory=FlowConfig)
    iam: IamConfig = field(default_factory=IamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)


def effective_flow(config: 'EvsConfig', op: Optional[OperatingPoint] = None) -> FlowConfig:
    """Return the flow settings in force at ``op`` (default: the config's operating point).

    Its own ``flow_scale`` when set, else ``flow.scale``.
    """
    op = op or config.operating_point
    return replace(config.flow, scale=op.flow_scale) if op.flow_scale else config.flow


SECTIONS = {f.name: f.type for f in fields(EvsConfig)}


PARAMETER_INFO: Dict[str, ParameterInfo] = {
    f'{section.name}.{item.name}': item.metadata['info']
    for section in fields(EvsConfig) for item in fields(section.type)}
"""Every dotted setting's :class:`ParameterInfo`, from the dataclass fields (the one place)."""

RESTART_REQUIRED = frozenset(name for name, info in PARAMETER_INFO.items() if info.restart)
"""Settings that need a restart of the node (they rebuild models, threads or subscriptions)."""
