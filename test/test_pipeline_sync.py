"""The synchronous reference pipeline with stub models on a translated synthetic texture."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from evs_ros.config import OPERATING_POINTS, EvsConfig, OperatingPoint
from evs_ros.models.base import Prediction
from evs_ros.pipeline import EvsPipeline, keyframe_pattern

HEIGHT, WIDTH, SHIFT_PX, NUM_CLASSES = 64, 128, 2, 4


def texture(seed=0, height=HEIGHT, width=WIDTH + 64):
    """Make a smooth random texture, uint8 (height, width, 3): DIS needs gradients."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255.0
    return np.repeat(smooth.astype(np.uint8)[..., None], 3, axis=2)


def frame_at(base, index, shift_px=SHIFT_PX):
    """Frame ``index`` of a camera panning right: content moves left by shift_px per frame."""
    start = index * shift_px
    return np.ascontiguousarray(base[:HEIGHT, start:start + WIDTH])


def labels_of(image_bgr):
    """Return the stub network's labels: intensity quartiles, uint8 (H, W)."""
    return np.clip(image_bgr[..., 0] // 64, 0, NUM_CLASSES - 1).astype(np.uint8)


class IntensityModel:
    """Stub network: probabilities are a deterministic function of the pixel intensity."""

    num_classes = NUM_CLASSES

    def __init__(self, out_scale=1.0, features=True):
        self.out_scale = out_scale
        self.features = features
        self.inputs = []

    def predict(self, image_bgr):
        self.inputs.append(image_bgr.shape)
        one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[labels_of(image_bgr)]
        probs = np.ascontiguousarray((one_hot * 0.6 + 0.1).transpose(2, 0, 1))
        if self.out_scale != 1.0:
            size = (round(image_bgr.shape[1] * self.out_scale),
                    round(image_bgr.shape[0] * self.out_scale))
            probs = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_NEAREST)
                              for p in probs])
        features = None
        if self.features:
            gray = image_bgr[..., 0].astype(np.float32)
            features = cv2.resize(gray, (image_bgr.shape[1] // 4, image_bgr.shape[0] // 4))[None]
        return Prediction(probs=probs, features=features)


class ShiftFlow:
    """Exact flow of the panning camera: each current pixel was ``shift_px`` to the right."""

    def __init__(self, shift_px=SHIFT_PX):
        self.shift_px = shift_px
        self.calls = 0

    def calc(self, gray_cur, gray_prev):
        self.calls += 1
        flow = np.zeros(gray_cur.shape + (2,), np.float32)
        flow[..., 0] = self.shift_px
        return flow


class ConstantRefiner:
    """Stub Refiner: always predicts class ``label``; records its inputs."""

    def __init__(self, label=NUM_CLASSES - 1):
        self.label = label
        self.calls = []

    def refine(self, image_bgr, probs_warped, features_warped):
        self.calls.append((image_bgr.shape, probs_warped.shape,
                           None if features_warped is None else features_warped.shape))
        probs = np.zeros_like(probs_warped)
        probs[self.label] = 1.0
        return probs


def make_pipeline(op, model=None, refiner=None, flow=None):
    config = EvsConfig(operating_point=op)
    return EvsPipeline(config, model or IntensityModel(), refiner=refiner,
                       flow_estimator=flow or ShiftFlow())


@pytest.mark.parametrize('name', ['EVS03', 'EVS05', 'EVS08', 'EVS14'])
def test_keyframe_pattern_matches_operating_point(name):
    op = OPERATING_POINTS[name]
    model = IntensityModel()
    pipeline = make_pipeline(op, model)
    base = texture()
    flags = [pipeline.process(frame_at(base, i % 20), stamp_ns=i).info.keyframe
             for i in range(20)]
    assert flags == keyframe_pattern(op, 20)
    assert len(model.inputs) == sum(flags)


def test_labels_propagate_exactly_under_integer_shift():
    pipeline = make_pipeline(OPERATING_POINTS['EVS10'])
    base = texture()
    for index in range(6):
        result = pipeline.process(frame_at(base, index), stamp_ns=index, meta=('hdr', index))
        interior = WIDTH - index * SHIFT_PX   # pixels that were visible in the keyframe
        expected = labels_of(frame_at(base, index))
        np.testing.assert_array_equal(result.labels[:, :interior], expected[:, :interior])
        assert result.info.frames_since_keyframe == index
        assert result.meta == ('hdr', index)
        assert result.labels.shape == (HEIGHT, WIDTH) and result.labels.dtype == np.uint8
        assert result.mask.shape == (HEIGHT, WIDTH) and result.mask.dtype == np.uint8
    assert result.info.inconsistent_fraction == 0.0
    assert result.info.warp_ms > 0.0


def test_real_dis_flow_propagates_labels():
    op = OPERATING_POINTS['EVS10']
    pipeline = EvsPipeline(EvsConfig(operating_point=op), IntensityModel())
    base = texture(seed=1)
    for index in range(4):
        result = pipeline.process(frame_at(base, index), stamp_ns=index)
    margin = 3 * SHIFT_PX + 8
    expected = labels_of(frame_at(base, 3))
    agreement = np.mean(result.labels[8:-8, 8:-margin] == expected[8:-8, 8:-margin])
    assert agreement > 0.95
    assert result.info.flow_ms > 0.0


def test_warp_off_holds_labels_and_computes_no_flow():
    flow = ShiftFlow()
    pipeline = make_pipeline(OPERATING_POINTS['EVS08'], flow=flow)
    base = texture()
    first = pipeline.process(frame_at(base, 0)).labels
    for index in range(1, 5):
        result = pipeline.process(frame_at(base, index))
        np.testing.assert_array_equal(result.labels, first)
        assert np.isnan(result.info.inconsistent_fraction)
    assert flow.calls == 0


def test_downscale_feeds_smaller_image_and_labels_stay_camera_size():
    model = IntensityModel(out_scale=0.25)
    pipeline = make_pipeline(OPERATING_POINTS['EVS12'], model)
    result = pipeline.process(frame_at(texture(), 0))
    assert model.inputs == [(HEIGHT // 2, WIDTH // 2, 3)]
    assert result.probs.shape == (NUM_CLASSES, HEIGHT // 8, WIDTH // 8)
    assert result.labels.shape == (HEIGHT, WIDTH)


class BlockFlow(ShiftFlow):
    """Panning flow with a 16 x 16 block moving differently: inconsistent around the block."""

    def calc(self, gray_cur, gray_prev):
        flow = super().calc(gray_cur, gray_prev)
        flow[24:40, 56:72] = (-6.0, 5.0)
        return flow


def test_refine_calls_refiner_and_blends_only_inside_mask():
    op = OPERATING_POINTS['EVS06']
    refiner = ConstantRefiner()
    reference = make_pipeline(OPERATING_POINTS['EVS07'], flow=BlockFlow())
    pipeline = make_pipeline(op, refiner=refiner, flow=BlockFlow())
    base = texture()
    for index in range(2):
        warped = reference.process(frame_at(base, index))
        result = pipeline.process(frame_at(base, index))
    assert result.info.refined and len(refiner.calls) == 1
    assert refiner.calls[0] == ((HEIGHT, WIDTH, 3), (NUM_CLASSES, HEIGHT, WIDTH),
                                (1, HEIGHT // 4, WIDTH // 4))
    inside = result.mask == 255
    outside = result.mask == 0
    assert 0 < result.info.inconsistent_fraction < 0.5
    assert inside.any() and outside.any()
    assert np.all(result.labels[inside] == refiner.label)
    np.testing.assert_array_equal(result.labels[outside], warped.labels[outside])


def test_refine_without_refiner_or_features():
    base = texture()
    no_refiner = make_pipeline(OPERATING_POINTS['EVS06'], flow=BlockFlow())
    refiner = ConstantRefiner()
    no_features = make_pipeline(OPERATING_POINTS['EVS06'], IntensityModel(features=False),
                                refiner=refiner, flow=BlockFlow())
    for index in range(2):
        plain = no_refiner.process(frame_at(base, index))
        refined = no_features.process(frame_at(base, index))
    assert not plain.info.refined
    assert refined.info.refined and refiner.calls[0][2] is None


def test_resolution_change_resets_to_keyframe():
    pipeline = make_pipeline(OPERATING_POINTS['EVS10'])
    base = texture()
    pipeline.process(frame_at(base, 0))
    pipeline.process(frame_at(base, 1))
    small = np.ascontiguousarray(frame_at(base, 2)[:32, :64])
    result = pipeline.process(small)
    assert result.info.keyframe and result.labels.shape == (32, 64)


def test_set_operating_point_switches_warp_on_at_runtime():
    op_hold = replace(OPERATING_POINTS['EVS11'], keyframe_interval=100)
    pipeline = make_pipeline(op_hold)
    base = texture()
    pipeline.process(frame_at(base, 0))
    pipeline.process(frame_at(base, 1))
    pipeline.set_operating_point(OperatingPoint(name='W', keyframe_interval=100, warp=True))
    held = pipeline.process(frame_at(base, 2))    # no previous gray frame yet: holds
    moved = pipeline.process(frame_at(base, 3))   # propagates from here on
    assert held.info.operating_point == 'W' and np.isnan(held.info.inconsistent_fraction)
    assert moved.info.inconsistent_fraction == 0.0
    np.testing.assert_array_equal(moved.labels[:, :-SHIFT_PX], held.labels[:, SHIFT_PX:])


def small_icnet_and_refiner():
    """Random-init ICNet (width 1/4) and Refiner on the CPU, like any SegmentationModel."""
    torch = pytest.importorskip('torch')
    from evs_ros.models.icnet import ICNet, IcnetModel
    from evs_ros.models.refiner import RefinerNet, TorchRefiner
    torch.set_num_threads(1)
    torch.manual_seed(0)
    network = ICNet(num_classes=19, width_mult=0.25, aux_heads=False)
    refiner = RefinerNet(19, feature_channels=network.feature_channels, width_mult=0.25)
    return IcnetModel(network, device='cpu'), TorchRefiner(refiner, device='cpu')


def test_real_icnet_refiner_and_dis_end_to_end():
    model, refiner = small_icnet_and_refiner()
    pipeline = EvsPipeline(EvsConfig(operating_point=OPERATING_POINTS['EVS04']), model, refiner)
    base = texture()
    results = [pipeline.process(frame_at(base, i), stamp_ns=i) for i in range(4)]
    assert [r.info.keyframe for r in results] == [True, False, False, True]
    assert [r.info.refined for r in results] == [False, True, True, False]
    for result in results:
        assert result.labels.shape == (HEIGHT, WIDTH) and result.labels.max() < 19
        assert result.probs.shape == (19, HEIGHT // 4, WIDTH // 4)


def test_an_operating_point_flow_scale_switches_the_estimator_at_run_time(textured_frames):
    from dataclasses import replace as replace_op
    from evs_ros.config import EvsConfig, operating_point as preset
    from evs_ros.flow import FlowEstimator
    config = EvsConfig(operating_point=preset('EVS07'))
    pipeline = EvsPipeline(config, IntensityModel())
    pipeline.process(textured_frames[0])
    pipeline.set_operating_point(replace_op(preset('EVS07'), flow_scale=0.5))
    pipeline.process(textured_frames[1])
    estimator = pipeline._stepper._flow  # the stepper's own DIS: built for the new scale
    assert isinstance(estimator, FlowEstimator) and estimator.config.scale == 0.5
