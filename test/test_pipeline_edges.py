"""Edge cases of the per-frame path.

Restarts under overload, failures in the synchronous pipeline, run-time mode switches, bounded
memory between keyframes.
"""

from dataclasses import replace

import numpy as np
import pytest

from evs_ros.config import EvsConfig, FlowConfig, operating_point
from evs_ros.models.base import Prediction
from evs_ros.pipeline import EvsPipeline
from evs_ros.pipeline.frame_buffer import LatestFrameBuffer
from evs_ros.pipeline.state import MAX_PROBS_STEPS
from evs_ros.pipeline.stats import StreamStats


def test_a_restart_survives_when_its_frame_is_dropped():
    """A bag loop (stamp jumps back) under overload.

    The frame carrying the restart is dropped for a newer one, which must restart the stream
    instead.
    """
    buffer = LatestFrameBuffer(1, StreamStats(), startup_hold=1)
    image = np.zeros((4, 4, 3), np.uint8)
    assert buffer.put(image, 10_000_000_000)
    buffer.take()
    buffer.release_hold(0)
    assert buffer.put(image, 1)  # jumped back by 10 s: restart
    assert buffer.put(image, 2)  # overload: drops the restarting frame
    frame = buffer.take()
    assert frame.stamp_ns == 2 and frame.restart and frame.dropped_before == 1


def test_frames_wait_for_the_first_output_instead_of_being_dropped():
    """Up to startup_hold frames are kept before the first output (and after a restart).

    So a camera's first frames are not lost while the first keyframe runs; then drop-oldest again.
    """
    stats = StreamStats()
    buffer = LatestFrameBuffer(1, stats, startup_hold=3)
    image = np.zeros((4, 4, 3), np.uint8)
    second = 1_000_000_000
    for stamp in range(11, 15):
        assert buffer.put(image, stamp * second)
    assert len(buffer) == 3 and stats.snapshot()['dropped'] == 1  # the hold is bounded
    assert buffer.take().stamp_ns == 12 * second
    buffer.release_hold(1)  # that frame (arrival index 1) was output
    assert buffer.put(image, 15 * second) and buffer.put(image, 16 * second)
    # the held frames are all processed; newer ones are dropped beyond the capacity
    assert [frame.stamp_ns // second for frame in buffer.waiting()] == [13, 14, 16]
    assert buffer.take().stamp_ns == 13 * second and buffer.take().stamp_ns == 14 * second
    assert buffer.put(image, 1 * second)  # back by 15 s: a restart holds again
    assert buffer.put(image, 2 * second)
    assert [frame.stamp_ns // second for frame in buffer.waiting()] == [16, 1, 2]
    buffer.release_hold(5)  # an output from before the restart does not end its hold
    assert buffer.put(image, 3 * second) and len(buffer) == 3
    assert [frame.stamp_ns // second for frame in buffer.waiting()] == [1, 2, 3]


class FlakyModel:
    """Fails on its first call, then answers one class everywhere."""

    num_classes = 3

    def __init__(self):
        self.calls = 0

    def predict(self, image_bgr):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError('first call fails')
        height, width = image_bgr.shape[:2]
        return Prediction(np.eye(3, dtype=np.float32)[np.ones((height // 4, width // 4), int)]
                          .transpose(2, 0, 1).copy())


def test_a_failed_synchronous_keyframe_makes_the_next_frame_a_keyframe():
    pipeline = EvsPipeline(EvsConfig(operating_point=operating_point('EVS10')), FlakyModel())
    frame = np.full((32, 64, 3), 80, np.uint8)
    with pytest.raises(RuntimeError, match='first call fails'):
        pipeline.process(frame)
    result = pipeline.process(frame)
    assert result.info.keyframe and result.info.frames_since_keyframe == 0
    assert (result.labels == 1).all()


def moving_frames(count):
    rng = np.random.default_rng(4)
    import cv2
    base = cv2.GaussianBlur(rng.integers(0, 255, (64, 200, 3), np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(base[:, 3 * i:3 * i + 128]) for i in range(count)]


class TextureModel:
    num_classes = 4

    def predict(self, image_bgr):
        small = image_bgr[::4, ::4, 0].astype(np.int64) * 4 // 256
        return Prediction(np.eye(4, dtype=np.float32)[small].transpose(2, 0, 1).copy())


def test_switching_the_label_mode_mid_cycle_continues_from_the_current_labels():
    """Switch previous -> keyframe at run time.

    The anchor is the current frame's labels, not the keyframe's (which would be warped by one step
    only, several frames late).
    """
    images = moving_frames(8)
    base = EvsConfig(operating_point=operating_point('EVS14'),
                     flow=FlowConfig(labels_from='previous'))
    pipeline = EvsPipeline(base, TextureModel())
    for image in images[:5]:
        pipeline.process(image)
    state = pipeline._stepper.state
    assert state.age == 4 and state.anchor_labels_low is state.labels_low
    pipeline.set_config(replace(base, flow=FlowConfig(labels_from='keyframe')))
    pipeline.process(images[5])
    state = pipeline._stepper.state
    assert state.anchor_chain is not None and state.age == 5


def test_probability_step_flows_stay_bounded_between_keyframes():
    images = moving_frames(MAX_PROBS_STEPS + 6)
    pipeline = EvsPipeline(EvsConfig(operating_point=replace(
        operating_point('EVS10'), keyframe_interval=100)), TextureModel())
    for image in images:
        pipeline.process(image)
    assert len(pipeline._stepper.state.probs_steps) <= MAX_PROBS_STEPS
