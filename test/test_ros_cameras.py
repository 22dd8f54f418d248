"""Several cameras in one evs_node, idle topics and /diagnostics (installed node, real DDS).

Topics nobody subscribes to are not published. Cameras share one inference worker but keep their
own state and outputs.
"""

import numpy as np

from node_harness import (FAILING_BACKEND, DiagnosticsRecorder, header_key, labels_array, stamp,
                          uniform_frame)


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
        # EVS05: S=3 on its own frames
        assert [s.keyframe_requested for s in statuses].count(True) == 3
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
    count = recorder.count()
    assert node.player.wait_for(lambda: recorder.count() >= count + 2, 10), 'published again'
    with recorder.lock:
        arrays = list(recorder.arrays)
    stamps_ns = [a.header.stamp.sec * 10**9 + a.header.stamp.nanosec for a in arrays]
    assert stamps_ns == sorted(set(stamps_ns)), 'one array per period, stamped in order'
    assert all(sorted(s.name for s in a.status) == ['/evs_node: front', '/evs_node: rear']
               for a in arrays), 'every array has every camera'


DIAG_SETTINGS = {'publish.diagnostics_stale_s': 3.0, 'publish.diagnostics_clear_frames': 4}


def wait_level(node, recorder, level: bytes, text: str = '', name: str = '/evs_node: camera'):
    """Wait until the newest status ``name`` has ``level`` and ``text`` in its message."""
    def reached():
        status = recorder.status(name)
        return status is not None and status.level == level and text in status.message
    assert node.player.wait_for(reached, 15), (recorder.status(name), node.log())


def stream_until(node, recorder, level: bytes, first: int, name: str = '/evs_node: camera'):
    """Send good frames one at a time, as a live camera would, until status ``name`` has ``level``.

    Stamps start at index ``first``; returns the next free index.
    """
    index = first
    while index < first + 1000:
        status = recorder.status(name)
        if status is not None and status.level == level:
            return index
        assert node.send_and_wait(uniform_frame(30), stamp(index)), node.log()
        index += 1
    raise AssertionError((recorder.status(name), node.log()))


def test_diagnostics_go_stale_warn_and_back_to_ok(harness):
    from diagnostic_msgs.msg import DiagnosticStatus
    from test_ros_robustness import BAD_MESSAGES
    node = harness(DIAG_SETTINGS)
    recorder = DiagnosticsRecorder(node.player)
    wait_level(node, recorder, DiagnosticStatus.STALE, 'no frame received yet')
    index = stream_until(node, recorder, DiagnosticStatus.OK, 0)
    for offset, (_, _, build) in enumerate(BAD_MESSAGES[:3]):
        node.player.publish_msg(build(stamp(index + offset)))
    wait_level(node, recorder, DiagnosticStatus.WARN, 'input rejected (3 so far, see log)')
    stream_until(node, recorder, DiagnosticStatus.OK, index + 3)  # good frames clear it
    assert recorder.status('/evs_node: camera').message == 'ok'
    values = recorder.values_of('/evs_node: camera')
    assert (values['rejected_encoding'], values['rejected_empty']) == ('2', '1')
    wait_level(node, recorder, DiagnosticStatus.STALE, 'no frame for')  # the camera stopped


def test_diagnostics_report_an_error_while_the_network_fails(harness):
    from diagnostic_msgs.msg import DiagnosticStatus
    node = harness(dict(DIAG_SETTINGS, **{'model.backend': FAILING_BACKEND,
                                          'operating_point.preset': 'PERFRAME',
                                          'publish.diagnostics_stale_s': 30.0}))
    recorder = DiagnosticsRecorder(node.player)
    for index in range(3):
        assert node.send_and_wait(uniform_frame(30), stamp(index))
    wait_level(node, recorder, DiagnosticStatus.OK, 'ok')
    for index in range(3, 6):  # the fake network fails on very blue frames
        assert node.send_and_wait(uniform_frame(250), stamp(index))
    wait_level(node, recorder, DiagnosticStatus.ERROR, 'network failed')
    for index in range(6, 12):
        assert node.send_and_wait(uniform_frame(30), stamp(index))
    wait_level(node, recorder, DiagnosticStatus.OK, 'ok')
    assert node.alive()
