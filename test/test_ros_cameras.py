"""Several cameras in one evs_node, idle topics and /diagnostics (installed node, real DDS).

Topics nobody subscribes to are not published. Cameras share one inference worker but keep their
own state and outputs.
"""

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy

from node_harness import header_key, labels_array, stamp, uniform_frame


class DiagnosticsRecorder:
    """Records /diagnostics arrays on a player's node."""

    def __init__(self, player):
        self.arrays = []
        self.lock = threading.Lock()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        player.node.create_subscription(DiagnosticArray, '/diagnostics', self._record, qos)

    def _record(self, array):
        with self.lock:
            self.arrays.append(array)

    def latest(self):
        with self.lock:
            return self.arrays[-1] if self.arrays else None

    def values(self, array, name: str) -> dict:
        """Return the key/value pairs of the status called ``name`` in ``array``."""
        status = next(s for s in array.status if s.name == name)
        return {kv.key: kv.value for kv in status.values}


def test_two_cameras_have_their_own_outputs_and_share_the_network(harness):
    node = harness({'cameras': '[front, rear]'}, prefixes=('front/', 'rear/'))
    front, rear = node.players['front/'], node.players['rear/']
    blues = {'front': 20, 'rear': 200}
    for index in range(9):  # interleaved, same stamps on both cameras: separate streams
        assert node.send_and_wait(uniform_frame(blues['front']), stamp(index), front)
        assert node.send_and_wait(uniform_frame(blues['rear'], 32, 48), stamp(index), rear)
    for name, player in (('front', front), ('rear', rear)):
        assert set(node.wait_counts(9, player).values()) == {9}, node.log()
        labels = player.messages('labels')
        assert [header_key(m)[:2] for m in labels] == [divmod(stamp(i), 10**9) for i in range(9)]
        assert {m.header.frame_id for m in labels} == {'camera'}
        shape = (64, 96) if name == 'front' else (32, 48)
        assert all((m.height, m.width) == shape for m in labels)
        assert all(set(np.unique(labels_array(m))) == {blues[name] // 14} for m in labels)
        statuses = player.messages('status')
        assert {s.camera for s in statuses} == {name}
        assert [s.keyframe for s in statuses].count(True) == 3  # EVS05: S=3 on its own frames
        adopted = [s for s in statuses if s.inference_ms > 0]
        assert len(adopted) >= 2, 'keyframe results of this camera came back from the network'
        assert statuses[-1].frames_received == 9
    assert "cameras=['front', 'rear']" in node.log()


def test_unsubscribed_outputs_are_skipped_and_diagnostics_count_them(harness):
    node = harness({'cameras': '[front, rear]'}, prefixes=('front/',), topics=('labels',))
    recorder = DiagnosticsRecorder(node.player)
    for index in range(5):
        assert node.send_and_wait(uniform_frame(60), stamp(index))

    def counted():
        array = recorder.latest()
        return array is not None and \
            recorder.values(array, '/evs_node: front').get('published_labels') == '5'
    assert node.player.wait_for(counted, 10), recorder.latest()
    array = recorder.latest()
    assert sorted(s.name for s in array.status) == ['/evs_node: front', '/evs_node: rear']
    front = recorder.values(array, '/evs_node: front')
    assert {k: front[k] for k in ('published_labels', 'published_labels_color',
                                  'published_overlay', 'published_inconsistency_mask')} == \
        {'published_labels': '5', 'published_labels_color': '0', 'published_overlay': '0',
         'published_inconsistency_mask': '0'}
    assert front['frames_out'] == '5' and front['operating_point'] == 'EVS05'
    rear = recorder.values(array, '/evs_node: rear')
    assert rear['published_labels'] == '0' and rear['frames_in'] == '0'
    count = len(recorder.arrays)
    assert node.player.wait_for(lambda: len(recorder.arrays) >= count + 2, 5)
    stamps_s = [a.header.stamp.sec + a.header.stamp.nanosec * 1e-9 for a in recorder.arrays]
    periods_s = np.diff(stamps_s)
    assert np.all((periods_s > 0.5) & (periods_s < 1.5)), periods_s  # a 1 Hz timer
