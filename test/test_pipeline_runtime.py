"""The real-time runtime: flow worker per stream, shared inference worker (design §4).

Models and flow estimators are gated by events so that every scenario (late keyframe, overload,
failure, close) is reproduced deterministically; waits use generous timeouts, never timing
asserts.
"""

import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from evs_ros.config import OPERATING_POINTS, EvsConfig, OperatingPoint, RuntimeConfig
from evs_ros.models.base import Prediction
from evs_ros.pipeline import EvsRuntime, EvsStream, InferenceWorker

HEIGHT, WIDTH, SHIFT_PX, NUM_CLASSES = 64, 128, 2, 4
TIMEOUT_S = 20.0


def wait_for(condition, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, 'condition not reached in time'
        time.sleep(0.005)


def texture(seed=0):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (HEIGHT, WIDTH + 128)).astype(np.float32),
                             (0, 0), 3.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 255.0
    return noise.astype(np.uint8)


def tagged_frame(base, index, tag=None):
    """uint8 (H, W, 3): blue = texture panned by index*SHIFT_PX, red = tag (default index)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = base[:, index * SHIFT_PX:index * SHIFT_PX + WIDTH]
    image[..., 1] = image[..., 0]
    image[..., 2] = index if tag is None else tag
    return image


def texture_labels(image_bgr):
    return np.clip(image_bgr[..., 0] // 64, 0, NUM_CLASSES - 1).astype(np.uint8)


def expected_labels(image_bgr, keyframe_tag):
    """Labels the tagged model gives: texture quartile shifted by the keyframe's tag."""
    return ((texture_labels(image_bgr) + keyframe_tag) % NUM_CLASSES).astype(np.uint8)


class TaggedModel:
    """Stub network whose labels encode the frame's tag; optional gate and failures."""

    num_classes = NUM_CLASSES

    def __init__(self, gated=False, fail_calls=()):
        self.gate = threading.Semaphore(0) if gated else None
        self.fail_calls = set(fail_calls)
        self.calls = 0
        self.completed = 0
        self.tags = []

    def predict(self, image_bgr):
        call = self.calls
        self.calls += 1
        if self.gate is not None:
            self.gate.acquire()
        try:
            if call in self.fail_calls:
                raise RuntimeError(f'stub failure on call {call}')
            tag = int(image_bgr[0, 0, 2])
            self.tags.append(tag)
            labels = expected_labels(image_bgr, tag)
            probs = np.eye(NUM_CLASSES, dtype=np.float32)[labels].transpose(2, 0, 1)
            features = image_bgr[::4, ::4, 0].astype(np.float32)[None]
            return Prediction(np.ascontiguousarray(probs) * 0.7 + 0.075, features)
        finally:
            self.completed += 1


class ShiftFlow:
    """Exact flow of the pan; optionally blocks in calc until released."""

    def __init__(self, gated=False):
        self.gate = threading.Semaphore(0) if gated else None
        self.entered = threading.Semaphore(0)

    def calc(self, gray_cur, gray_prev):
        self.entered.release()
        if self.gate is not None:
            self.gate.acquire()
        flow = np.zeros(gray_cur.shape + (2,), np.float32)
        flow[..., 0] = SHIFT_PX
        return flow


class Collector:
    def __init__(self):
        self.results = []

    def __call__(self, result):
        self.results.append(result)


def make_stream(op, model, flow=None, queue_size=8, refiner=None):
    config = EvsConfig(operating_point=op, runtime=RuntimeConfig(input_queue_size=queue_size))
    worker = InferenceWorker(model, refiner)
    collector = Collector()
    stream = EvsStream(config, worker, collector, name='cam', flow_estimator=flow or ShiftFlow())
    return stream, worker, collector


def close_all(stream, worker):
    assert stream.close(timeout_s=5.0)
    assert worker.close(timeout_s=5.0)


def test_every_frame_gets_one_output_in_order():
    model = TaggedModel()
    stream, worker, out = make_stream(OPERATING_POINTS['EVS05'], model)
    base = texture()
    for index in range(12):
        assert stream.submit(tagged_frame(base, index), stamp_ns=1000 + index, meta=index)
        wait_for(lambda: len(out.results) == index + 1)
    stamps = [r.info.stamp_ns for r in out.results]
    assert stamps == sorted(stamps) == [1000 + i for i in range(12)]
    assert [r.meta for r in out.results] == list(range(12))
    assert [r.info.keyframe for r in out.results] == [i % 3 == 0 for i in range(12)]
    first = out.results[0]
    assert first.info.frames_since_keyframe == 0
    np.testing.assert_array_equal(first.labels, expected_labels(tagged_frame(base, 0), 0))
    stats = stream.stats()
    assert stats['frames_in'] == stats['frames_out'] == 12 and stats['dropped'] == 0
    assert stats['flow_ms_p50'] > 0 and stats['latency_ms_p99'] >= stats['latency_ms_p50']
    close_all(stream, worker)


def test_non_monotonic_stamps_are_rejected():
    stream, worker, out = make_stream(OPERATING_POINTS['EVS05'], TaggedModel())
    base = texture()
    assert stream.submit(tagged_frame(base, 0), stamp_ns=10)
    assert not stream.submit(tagged_frame(base, 1), stamp_ns=10)
    assert not stream.submit(tagged_frame(base, 1), stamp_ns=5)
    assert stream.submit(tagged_frame(base, 1), stamp_ns=11)
    assert stream.drain(TIMEOUT_S)
    assert [r.info.stamp_ns for r in out.results] == [10, 11]
    assert stream.stats()['rejected'] == 2
    close_all(stream, worker)


def test_zero_stamps_mean_no_stamp_and_are_taken_in_arrival_order(caplog):
    stream, worker, out = make_stream(OPERATING_POINTS['EVS05'], TaggedModel())
    base = texture()
    for index in range(4):
        assert stream.submit(tagged_frame(base, index), stamp_ns=0, meta=index)
    assert stream.submit(tagged_frame(base, 4), stamp_ns=7, meta=4)  # stamps may start later
    assert stream.submit(tagged_frame(base, 5), stamp_ns=0, meta=5)
    assert stream.drain(TIMEOUT_S)
    assert [r.meta for r in out.results] == list(range(6))
    assert stream.stats()['rejected'] == 0
    assert [r.message for r in caplog.records].count(
        'cam: frames without a stamp (0): taken in arrival order, outputs keep the zero '
        'stamp') == 1
    close_all(stream, worker)


def test_frames_smaller_than_the_network_stride_are_refused():
    from evs_ros.pipeline.input_checks import NETWORK_STRIDE_PX, FrameRejected
    model = TaggedModel()
    stream, worker, out = make_stream(OPERATING_POINTS['EVS05'], model)
    assert stream.min_side_px == NETWORK_STRIDE_PX == 32
    for shape, cause in (((1, 1, 3), 'too_small'), ((8, 200, 3), 'too_small'),
                         ((200, 31, 3), 'too_small'), ((64, 64), 'format')):
        with pytest.raises(FrameRejected) as refused:
            stream.submit(np.zeros(shape, np.uint8), stamp_ns=1)
        assert refused.value.cause == cause
    with pytest.raises(FrameRejected, match=r'frame 8x8 is smaller than the network\'s stride: '
                       r'frames need at least 32 px on each side'):
        stream.submit(np.zeros((8, 8, 3), np.uint8), stamp_ns=1)
    assert stream.submit(np.zeros((32, 32, 3), np.uint8), stamp_ns=1)
    assert stream.drain(TIMEOUT_S) and len(out.results) == 1
    assert stream.stats()['frames_in'] == 1 and model.calls == 1
    close_all(stream, worker)


def test_a_network_may_state_its_own_stride():
    from evs_ros.pipeline.input_checks import min_frame_side_px

    class CoarseModel(TaggedModel):
        stride_px = 64
    assert min_frame_side_px(CoarseModel()) == 64 and min_frame_side_px(TaggedModel()) == 32


def test_a_stamp_jumping_back_over_a_second_restarts_the_stream():
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], TaggedModel())
    base = texture()
    second_ns = 1_000_000_000
    for index in range(3):
        assert stream.submit(tagged_frame(base, index), stamp_ns=5 * second_ns + index)
    assert not stream.submit(tagged_frame(base, 3), stamp_ns=5 * second_ns - 10)  # small: reject
    assert stream.submit(tagged_frame(base, 3), stamp_ns=second_ns)  # bag loop: restart
    assert stream.submit(tagged_frame(base, 4), stamp_ns=second_ns + 1)
    assert stream.drain(TIMEOUT_S)
    assert [r.info.keyframe for r in out.results] == [True, False, False, True, False]
    np.testing.assert_array_equal(out.results[3].labels,
                                  expected_labels(tagged_frame(base, 3), 3))
    assert stream.stats()['rejected'] == 1
    close_all(stream, worker)


def test_set_config_switches_flow_and_exact_backward_iam_without_errors():
    model = TaggedModel()
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], model)
    base = texture()
    for index in range(3):
        assert stream.submit(tagged_frame(base, index), stamp_ns=100 + index)
    assert stream.drain(TIMEOUT_S)
    config = EvsConfig(operating_point=OPERATING_POINTS['EVS10'])
    new_config = replace(config, flow=replace(config.flow, dis_preset='fast'),
                         iam=replace(config.iam, backward_flow='dis'))
    stream.set_config(new_config)
    for index in range(3, 8):
        assert stream.submit(tagged_frame(base, index), stamp_ns=100 + index)
    assert stream.drain(TIMEOUT_S)
    assert len(out.results) == 8 and stream.stats()['errors'] == 0
    assert not isinstance(stream._stepper._flow, ShiftFlow)  # a DIS estimator with the new preset
    assert all(0.0 <= r.info.inconsistent_fraction <= 1.0 for r in out.results[3:])
    close_all(stream, worker)


def test_late_keyframe_is_carried_forward_through_intermediate_flows():
    op = replace(OPERATING_POINTS['EVS10'], keyframe_interval=4)
    model = TaggedModel(gated=True)
    stream, worker, out = make_stream(op, model)
    base = texture()
    model.gate.release()                                  # the first keyframe runs at once
    for index in range(7):                                # keyframe 4 is requested, blocked
        stream.submit(tagged_frame(base, index), stamp_ns=index)
        wait_for(lambda: len(out.results) == index + 1)
    model.gate.release()                                  # keyframe 4 arrives now
    assert worker.wait_idle(TIMEOUT_S) and model.completed == 2
    stream.submit(tagged_frame(base, 7), stamp_ns=7)
    wait_for(lambda: len(out.results) == 8)
    for index in (5, 6):                                  # still propagating keyframe 0
        result = out.results[index]
        interior = WIDTH - index * SHIFT_PX
        expected = expected_labels(tagged_frame(base, index), 0)
        np.testing.assert_array_equal(result.labels[:, :interior], expected[:, :interior])
        assert result.info.frames_since_keyframe == index
    caught_up = out.results[7]
    assert caught_up.info.frames_since_keyframe == 3 and caught_up.info.inference_ms > 0
    interior = WIDTH - 3 * SHIFT_PX
    expected = expected_labels(tagged_frame(base, 7), 4)  # keyframe 4 warped by flows 5, 6, 7
    np.testing.assert_array_equal(caught_up.labels[:, :interior], expected[:, :interior])
    assert model.tags == [0, 4]
    close_all(stream, worker)


def test_overload_drops_oldest_frames_instead_of_queueing():
    flow = ShiftFlow(gated=True)
    model = TaggedModel()
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], model, flow, queue_size=2)
    base = texture()
    stream.submit(tagged_frame(base, 0), stamp_ns=0)
    wait_for(lambda: len(out.results) == 1)
    stream.submit(tagged_frame(base, 1), stamp_ns=1)
    assert flow.entered.acquire(timeout=TIMEOUT_S)       # the worker is busy with frame 1
    lengths = []
    for index in range(2, 11):
        assert stream.submit(tagged_frame(base, index), stamp_ns=index)
        lengths.append(stream.queue_length())
    for _ in range(3):
        flow.gate.release()
    assert stream.drain(TIMEOUT_S)
    assert max(lengths) == 2
    stats = stream.stats()
    assert stats['dropped'] == 7 and stats['max_queue'] == 2
    assert stats['frames_out'] + stats['dropped'] == stats['frames_in'] == 11
    assert [r.info.stamp_ns for r in out.results] == [0, 1, 9, 10]
    assert out.results[2].info.dropped_frames == 7
    close_all(stream, worker)


def test_frames_behind_the_first_keyframe_are_propagated_not_dropped():
    """The first frame waits for the network.

    Frames arriving meanwhile wait too (even with a one-frame buffer) and are propagated from it
    once it lands.
    """
    model = TaggedModel(gated=True)
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], model, queue_size=1)
    base = texture()
    for index in range(6):
        assert stream.submit(tagged_frame(base, index), stamp_ns=index)
    model.gate.release()
    assert stream.drain(TIMEOUT_S)
    assert [r.info.stamp_ns for r in out.results] == list(range(6))
    assert stream.stats()['dropped'] == 0 and model.tags == [0]
    for result in out.results:
        image = tagged_frame(base, result.info.stamp_ns)
        inner = np.s_[:, 16:-16]
        np.testing.assert_array_equal(result.labels[inner], expected_labels(image, 0)[inner])
    close_all(stream, worker)


def test_model_exception_is_counted_and_stream_continues(caplog):
    op = replace(OPERATING_POINTS['EVS10'], keyframe_interval=3)
    model = TaggedModel(fail_calls={1})
    stream, worker, out = make_stream(op, model)
    base = texture()
    with caplog.at_level('ERROR', logger='evs_ros'):
        for index in range(9):
            stream.submit(tagged_frame(base, index), stamp_ns=index)
            wait_for(lambda: len(out.results) == index + 1)
            if index == 3:
                assert worker.wait_idle(TIMEOUT_S)           # keyframe 3 failed
    assert any('stub failure' in record.getMessage() for record in caplog.records)
    assert stream.stats()['errors'] == 1
    flags = [r.info.keyframe for r in out.results]
    assert flags[:5] == [True, False, False, True, True]  # frame 4 retries the keyframe
    assert len(out.results) == 9 and model.tags[:2] == [0, 4]
    close_all(stream, worker)


def test_first_keyframe_failure_emits_ignore_labels_then_recovers():
    model = TaggedModel(fail_calls={0})
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], model)
    base = texture()
    for index in range(2):
        stream.submit(tagged_frame(base, index), stamp_ns=index)
        wait_for(lambda: len(out.results) == index + 1)
    assert np.all(out.results[0].labels == 255)
    assert out.results[0].info.frames_since_keyframe == -1
    assert out.results[1].info.keyframe and out.results[1].info.frames_since_keyframe == 0
    close_all(stream, worker)


def test_close_returns_while_model_is_stuck():
    model = TaggedModel(gated=True)
    stream, worker, out = make_stream(OPERATING_POINTS['EVS10'], model)
    stream.submit(tagged_frame(texture(), 0), stamp_ns=0)
    wait_for(lambda: model.calls == 1)                    # the first keyframe is in flight
    assert stream.close(timeout_s=5.0)                    # the flow worker stops waiting
    assert not stream.submit(tagged_frame(texture(), 1), stamp_ns=1)
    model.gate.release()                                  # the in-flight inference finishes
    assert worker.close(timeout_s=5.0)


def test_refine_on_waits_for_refiner_result():
    class Refiner:
        calls = 0

        def refine(self, image_bgr, probs_warped, features_warped):
            Refiner.calls += 1
            assert features_warped.shape == (1, HEIGHT // 4, WIDTH // 4)
            return probs_warped

    stream, worker, out = make_stream(OPERATING_POINTS['EVS06'], TaggedModel(),
                                      refiner=Refiner())
    base = texture()
    for index in range(3):
        stream.submit(tagged_frame(base, index), stamp_ns=index)
    assert stream.drain(TIMEOUT_S)
    assert [r.info.refined for r in out.results] == [False, True, True]
    assert Refiner.calls == 2 and out.results[2].info.refine_ms > 0
    close_all(stream, worker)


class GatedJobs:
    """Work functions that record their order; ``block=True`` ones wait for ``gate``."""

    def __init__(self):
        self.gate, self.started, self.order = threading.Event(), threading.Event(), []

    def __call__(self, tag, block=False):
        def work():
            self.started.set()
            if block:
                self.gate.wait(TIMEOUT_S)
            self.order.append(tag)
        return work


def test_inference_worker_is_round_robin_over_streams():
    worker = InferenceWorker(model=None)
    key_a, key_b = worker.register(), worker.register()
    job = GatedJobs()
    gate, started, order = job.gate, job.started, job.order
    first = worker.submit(key_a, 'keyframe', 0, job('a0', block=True))
    assert started.wait(TIMEOUT_S)
    stale = worker.submit(key_a, 'keyframe', 1, job('a1'))
    worker.submit(key_b, 'keyframe', 0, job('b0'))
    last = worker.submit(key_a, 'keyframe', 2, job('a2'))
    gate.set()
    assert last.wait(TIMEOUT_S) and first.ok
    assert stale.superseded and not stale.ok
    assert order == ['a0', 'b0', 'a2']
    assert worker.close()


@pytest.mark.parametrize('policy, expected', [('stalest', ['blocker', 'c', 'a', 'b']),
                                              ('round_robin', ['blocker', 'a', 'b', 'c'])])
def test_the_stalest_stream_gets_the_network_first(policy, expected):
    """Keyframes waiting together.

    The stream showing the oldest labels runs first, unless the policy is round_robin (streams in
    turn).
    """
    worker = InferenceWorker(model=None, policy=policy)
    keys = [worker.register() for _ in range(4)]
    job = GatedJobs()
    gate, started, order = job.gate, job.started, job.order
    worker.submit(keys[3], 'keyframe', 0, job('blocker', block=True))
    assert started.wait(TIMEOUT_S)
    requests = [worker.submit(key, 'keyframe', 0, job(tag), priority=age)
                for key, tag, age in zip(keys, 'abc', (3, 1, 9))]
    gate.set()
    assert all(request.wait(TIMEOUT_S) for request in requests)
    assert order == expected
    assert worker.close()


class BatchRecordingModel:
    """predict_batch records its batch sizes; the first call blocks until released."""

    num_classes = NUM_CLASSES

    def __init__(self):
        self.batches, self.gate, self.started = [], threading.Event(), threading.Event()

    def predict(self, image_bgr):
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images):
        self.started.set()
        if not self.batches:
            self.gate.wait(TIMEOUT_S)
        self.batches.append(len(images))
        return [Prediction(np.full((NUM_CLASSES, 4, 8), 0.25, np.float32)) for _ in images]


def test_keyframes_of_several_streams_run_as_one_batch():
    from evs_ros.pipeline.stepper import KeyframeWork
    model = BatchRecordingModel()
    worker = InferenceWorker(model, batch=3)
    keys = [worker.register() for _ in range(4)]
    frame = np.zeros((16, 32, 3), np.uint8)
    first = worker.submit(keys[0], 'keyframe', 0, KeyframeWork(model, frame, 1.0))
    assert model.started.wait(TIMEOUT_S)
    waiting = [worker.submit(key, 'keyframe', 0, KeyframeWork(model, frame, 1.0))
               for key in keys[1:]]
    model.gate.set()
    assert all(request.wait(TIMEOUT_S) and request.ok for request in [first] + waiting)
    assert model.batches == [1, 3]  # three waiting keyframes of one size: one call
    assert all(request.result.labels.shape == (16, 32) for request in waiting)
    assert worker.close()


@pytest.mark.parametrize('streams', [2])
def test_two_streams_share_one_network(streams):
    config = EvsConfig(operating_point=OperatingPoint(name='S2', keyframe_interval=2))
    model = TaggedModel()
    runtime = EvsRuntime(config, model)
    outputs = [Collector() for _ in range(streams)]
    cams = [runtime.add_stream(f'cam{i}', outputs[i], flow_estimator=ShiftFlow())
            for i in range(streams)]
    base = texture()
    for index in range(6):
        for cam, out in zip(cams, outputs):
            cam.submit(tagged_frame(base, index, tag=index), stamp_ns=index)
    for cam in cams:
        assert cam.drain(TIMEOUT_S)
    stats = runtime.stats()
    for name in ('cam0', 'cam1'):
        assert stats[name]['keyframes'] >= 1
        assert stats[name]['frames_out'] + stats[name]['dropped'] == 6
    with pytest.raises(ValueError):
        runtime.add_stream('cam0', outputs[0])
    for cam in cams:  # takes effect on the next frame
        cam.set_config(replace(cam.config, operating_point=OPERATING_POINTS['EVS08']))
    for cam, out in zip(cams, outputs):
        cam.submit(tagged_frame(base, 6), stamp_ns=6)
        assert cam.drain(TIMEOUT_S)
        assert out.results[-1].info.operating_point == 'EVS08'
    assert runtime.close()


def test_runtime_with_real_icnet_refiner_and_dis():
    torch = pytest.importorskip('torch')
    from evs_ros.models.icnet import ICNet, IcnetModel
    from evs_ros.models.refiner import RefinerNet, TorchRefiner
    torch.manual_seed(0)
    network = ICNet(num_classes=19, width_mult=0.25, aux_heads=False)
    refiner = TorchRefiner(RefinerNet(19, network.feature_channels, width_mult=0.25), 'cpu')
    runtime = EvsRuntime(EvsConfig(operating_point=OPERATING_POINTS['EVS04']),
                         IcnetModel(network, device='cpu'), refiner)
    out = Collector()
    stream = runtime.add_stream('cam', out)                # real DIS flow
    base = texture()
    for index in range(6):
        assert stream.submit(tagged_frame(base, index, tag=0), stamp_ns=index)
        wait_for(lambda: len(out.results) == index + 1)
    assert [r.info.keyframe for r in out.results] == [i % 3 == 0 for i in range(6)]
    assert out.results[1].info.refined and out.results[1].info.flow_ms > 0
    assert all(r.labels.shape == (HEIGHT, WIDTH) for r in out.results)
    assert runtime.close()


def test_latency_uses_the_injected_clock():
    now = [10.0]
    flow = ShiftFlow(gated=True)
    config = EvsConfig(operating_point=OPERATING_POINTS['EVS10'])
    worker, out = InferenceWorker(TaggedModel()), Collector()
    stream = EvsStream(config, worker, out, flow_estimator=flow, clock=lambda: now[0])
    base = texture()
    stream.submit(tagged_frame(base, 0), stamp_ns=0)
    wait_for(lambda: len(out.results) == 1)
    now[0] = 20.0
    stream.submit(tagged_frame(base, 1), stamp_ns=1)      # submitted at t = 20.0 s
    assert flow.entered.acquire(timeout=TIMEOUT_S)
    now[0] = 20.25                                        # emitted at t = 20.25 s
    flow.gate.release()
    wait_for(lambda: len(out.results) == 2)
    assert out.results[0].info.latency_ms == 0.0
    assert out.results[1].info.latency_ms == pytest.approx(250.0)
    assert stream.stats()['latency_ms_p99'] == pytest.approx(250.0, rel=0.02)
    close_all(stream, worker)
