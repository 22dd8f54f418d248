"""The /diagnostics level of a camera and its reasons (evs_ros.ros.health), with a fake clock.

Every transition (STALE, OK, WARN, ERROR and back), without ROS.
"""

from dataclasses import replace

from evs_ros.config import EvsConfig
from evs_ros.ros.health import ERROR, OK, STALE, WARN, CameraHealth, Counters

PUBLISH = replace(EvsConfig().publish, diagnostics_stale_s=2.0, diagnostics_clear_frames=5,
                  diagnostics_min_output_ratio=0.5)


class Camera:
    """Counters of a fake camera and a clock that the test advances."""

    def __init__(self):
        self.now_s = 100.0
        self.counters = Counters()
        self.health = CameraHealth(PUBLISH, clock=lambda: self.now_s)

    def frames(self, good: int = 0, rejected: int = 0, failed: int = 0, outputs: int = None):
        """Feed frames arriving over one second; return the level and reasons then.

        ``outputs``: how many are output (default: all the good ones).
        """
        c = self.counters
        for index in range(good + rejected):  # the bad ones first
            self.health.frame_arrived()
            if index < rejected:
                self.health.rejected(c.received + index + 1)
        if failed:
            self.health.failed(c.received + rejected + 1)
        self.counters = Counters(received=c.received + good + rejected,
                                 rejected=c.rejected + rejected,
                                 outputs=c.outputs + (good if outputs is None else outputs),
                                 network_errors=c.network_errors + failed)
        return self.tick()

    def tick(self, seconds: float = 1.0):
        self.now_s += seconds
        return self.health.assess(self.counters)


def test_stale_before_the_first_frame_then_ok():
    camera = Camera()
    assert camera.tick(1.0) == (OK, []), 'within the timeout: waiting is fine'
    level, reasons = camera.tick(1.5)
    assert level == STALE and reasons == ['no frame received yet']
    assert camera.frames(good=10) == (OK, [])


def test_stale_when_the_camera_stops_and_ok_when_it_comes_back():
    camera = Camera()
    for _ in range(3):
        assert camera.frames(good=10)[0] == OK
    assert camera.tick(0.5)[0] == OK, '1.5 s without a frame is under the timeout'
    level, reasons = camera.tick(1.0)
    assert level == STALE and reasons[0].startswith('no frame for 2.5 s')
    assert camera.frames(good=10)[0] == OK


def test_rejected_input_warns_until_a_window_of_good_frames():
    camera = Camera()
    camera.frames(good=10)
    level, reasons = camera.frames(good=2, rejected=3)
    assert level == WARN and reasons == ['input rejected (3 so far, see log)']
    assert camera.frames(good=2)[0] == WARN, '4 good frames: still inside the window of 5'
    assert camera.frames(good=1) == (OK, []), '5 good frames since the last rejection'
    assert camera.frames(good=3, rejected=1)[0] == WARN, 'a new rejection warns again'


def test_network_failure_is_an_error_until_a_window_of_good_frames():
    camera = Camera()
    camera.frames(good=10)
    level, reasons = camera.frames(good=3, failed=3)
    assert level == ERROR and reasons[0].startswith('network failed (3 failed runs so far)')
    level, reasons = camera.frames(good=1, rejected=1, failed=1)
    assert level == ERROR and len(reasons) == 2, 'the worst level wins, every reason is listed'
    assert camera.frames(good=4)[0] == ERROR
    assert camera.frames(good=1) == (OK, [])


def test_output_rate_below_the_ratio_of_the_input_warns():
    camera = Camera()
    for _ in range(5):
        assert camera.frames(good=20)[0] == OK
    for _ in range(6):  # 20 Hz in, 5 Hz out: the node drops 3 of 4 frames
        level, reasons = camera.frames(good=20, outputs=5)
    assert level == WARN and reasons == [
        'output 5.0 Hz is below 50 % of the input 20.0 Hz (overloaded: frames dropped; a faster '
        'operating point helps)']
    assert camera.health.rates_hz() == (20.0, 5.0)
    for _ in range(6):  # the window moves past the overload
        level, reasons = camera.frames(good=20)
    assert (level, reasons) == (OK, [])


def test_a_ratio_of_zero_never_warns_about_the_rate():
    camera = Camera()
    camera.health.set_config(replace(PUBLISH, diagnostics_min_output_ratio=0.0))
    for _ in range(3):
        level, _ = camera.frames(good=20, outputs=0)
    assert level == OK
