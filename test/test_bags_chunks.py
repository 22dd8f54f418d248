"""Chunks of long bags (evs_ros.bags.chunks, labelling.label_chunk/merge_parts, borders).

The borders fall on the keyframe grid, and a chunked bag equals the one-pass bag exactly.
"""

import numpy as np
import pytest

from bag_helpers import moving_frame, raw_messages, write_input_bag
from evs_ros.bags import borders
from evs_ros.bags.chunks import chunk_borders, keyframe_grid, plan_chunks
from evs_ros.bags.labelling import label_chunk, merge_parts, process_bag
from evs_ros.bags.network import PipelineLabeller
from evs_ros.config import EvsConfig, operating_point
from evs_ros.data.rosbag_io import BagError, BagReader
from evs_ros.models.backends import load_backend

PERIOD_NS = 50_000_000  # 20 Hz


def make_model():
    """fake_models' colour bands behind the python: backend (class = blue // 14)."""
    return load_backend('python:fake_models:make_model', 'cpu')


def stamps(count, period_ns=PERIOD_NS):
    return [1_000 + i * period_ns for i in range(count)]


def test_borders_are_on_the_grid_at_or_after_each_time_step():
    # 20 Hz, 0.5 s chunks = 10 frames; S = 3 -> 12, then 21 (first multiple of 3 >= 20), 30, ...
    assert chunk_borders(stamps(40), 0.5, 3) == [0, 12, 21, 30]
    assert chunk_borders(stamps(40), 0.5, 1) == [0, 10, 20, 30]
    assert chunk_borders(stamps(40), 0.0, 3) == [0]  # 0 = never split
    assert chunk_borders(stamps(9), 10.0, 3) == [0]  # shorter than one chunk
    assert chunk_borders([], 1.0, 3) == [0]


def test_a_border_never_splits_frames_with_the_same_bag_time():
    times = stamps(20)
    times[8] = times[7]  # frames 7 and 8 recorded at the same bag time
    assert chunk_borders(times, 0.4, 1) == [0, 9, 16]  # not 8: it shares frame 7's time


def test_grid_of_an_operating_point_is_s_or_s_max():
    assert keyframe_grid(operating_point('EVS05')) == 3
    assert keyframe_grid(operating_point('EVS14')) == 17
    assert keyframe_grid(operating_point('ADAPTIVE')) == 10
    assert keyframe_grid(operating_point('PERFRAME')) == 1


def test_plan_covers_every_frame_once_with_time_ranges():
    times = stamps(40)
    plan = plan_chunks(times, 0.5, operating_point('EVS05'))
    assert [(c.first_frame, c.frames) for c in plan] == [(0, 12), (12, 9), (21, 9), (30, 10)]
    assert [c.start_ns for c in plan] == [times[0], times[12], times[21], times[30]]
    assert [c.stop_ns for c in plan] == [times[12], times[21], times[30], None]


def labeller_factory(config):
    model = make_model()
    return lambda: PipelineLabeller(config, model, None)


def label_in_chunks(tmp_path, in_path, topic, config, chunk_s, storage=None):
    """Do what evs fleet does for a long bag, without Ray: plan, one part per chunk, merge."""
    with BagReader(in_path) as reader:
        plan = plan_chunks(reader.timestamps(topic), chunk_s, config.operating_point)
    new_labeller = labeller_factory(config)
    parts, keyframes = [], 0
    for chunk in plan:
        part = tmp_path / f'part{chunk.index}'
        labeller = new_labeller()
        summary = label_chunk(in_path, part, topic, labeller, chunk.start_ns, chunk.stop_ns,
                              labeller.colorize)
        assert summary.frames + summary.skipped_frames == chunk.frames
        parts.append(part)
        keyframes += summary.keyframes
    out = tmp_path / 'merged'
    summary = merge_parts(in_path, out, topic, parts, storage)
    return out, plan, summary, keyframes


@pytest.mark.parametrize('preset, storage, compressed', [
    ('EVS05', 'sqlite3', False), ('EVS10', 'mcap', False), ('EVS03', 'sqlite3', True),
    ('PERFRAME', 'mcap', False)])
def test_chunked_bag_equals_the_one_pass_bag(tmp_path, preset, storage, compressed):
    config = EvsConfig(operating_point=operating_point(preset))
    topic = write_input_bag(tmp_path / 'in', storage, compressed, frames=45, frame=moving_frame)
    labeller = labeller_factory(config)()
    whole = process_bag(tmp_path / 'in', tmp_path / 'whole', topic, labeller, labeller.colorize)
    merged, plan, summary, keyframes = label_in_chunks(tmp_path, tmp_path / 'in', topic, config,
                                                       0.6)
    assert len(plan) >= 3
    assert raw_messages(merged) == raw_messages(tmp_path / 'whole')
    assert (summary.frames, summary.skipped_frames, summary.messages_copied) == \
        (whole.frames, whole.skipped_frames, whole.messages_copied) == (45, 0, 90)
    assert keyframes == whole.keyframes


def test_an_undecodable_frame_shifts_the_one_pass_grid_only_after_it(tmp_path):
    """The one-pass run counts decoded frames.

    After a bad frame its keyframes move by one, the chunks' stay on the message grid. Every
    decodable frame is labelled either way.
    """
    config = EvsConfig(operating_point=operating_point('EVS05'))
    topic = write_input_bag(tmp_path / 'in', frames=45, frame=moving_frame, broken_frame=31)
    labeller = labeller_factory(config)()
    process_bag(tmp_path / 'in', tmp_path / 'whole', topic, labeller, labeller.colorize)
    merged, plan, summary, _ = label_in_chunks(tmp_path, tmp_path / 'in', topic, config, 0.6)
    assert (summary.frames, summary.skipped_frames) == (44, 1)
    whole, chunked = raw_messages(tmp_path / 'whole'), raw_messages(merged)
    assert set(whole) == set(chunked) and len(chunked['/camera/labels']) == 44
    before_bad = [m for m in whole['/camera/labels'] if m[0] < 1_700_000_000_000_000_000 +
                  31 * PERIOD_NS]
    assert chunked['/camera/labels'][:len(before_bad)] == before_bad


def test_borders_off_the_grid_would_change_the_labels(tmp_path):
    """The check above can fail: cut EVS05 (S=3) at frame 10 instead of 9 or 12."""
    config = EvsConfig(operating_point=operating_point('EVS05'))
    frames = [moving_frame(i) for i in range(30)]
    model = make_model()
    reference = borders.label_clip(frames, config, model, None)
    on_grid = borders.label_clip(frames, config, model, None, [12, 21])
    off_grid = borders.label_clip(frames, config, model, None, [10, 22])
    assert all(np.array_equal(a, b) for a, b in zip(reference, on_grid))
    result = borders.compare(reference, off_grid, [0, 10, 22])
    assert result['frames_differing'] > 0
    assert result['frames_after_border_until_identical'][0] == 0  # before the first border


def test_border_study_reports_both_placements():
    config = EvsConfig(operating_point=operating_point('EVS05'))
    frames = [moving_frame(i) for i in range(24)]
    result = borders.border_study(frames, config, make_model(), None, 8)
    assert result['grid'] == 3 and result['on_grid']['borders'] == [0, 9, 18]
    assert result['on_grid']['frames_differing'] == 0
    assert result['off_grid']['borders'] == [0, 10, 19]
    assert result['off_grid']['frames_differing'] > 0
    assert borders.grid_borders(30, 10, 3) == [12, 21]


def test_merge_refuses_parts_that_do_not_match_the_input(tmp_path):
    config = EvsConfig(operating_point=operating_point('EVS05'))
    topic = write_input_bag(tmp_path / 'in', frames=12, frame=moving_frame)
    write_input_bag(tmp_path / 'other', frames=12, frame=moving_frame, period_ns=40_000_000)
    labeller = labeller_factory(config)()
    label_chunk(tmp_path / 'other', tmp_path / 'part', topic, labeller, 0, None)
    with pytest.raises(BagError, match='match no image'):
        merge_parts(tmp_path / 'in', tmp_path / 'out', topic, [tmp_path / 'part'])
    assert not (tmp_path / 'out').exists()


def test_timestamps_from_the_sqlite_index_equal_the_messages(tmp_path):
    for storage in ('sqlite3', 'mcap'):
        topic = write_input_bag(tmp_path / storage, storage, frames=7)
        with BagReader(tmp_path / storage) as reader:
            expected = [t for _, t, _ in reader.messages([topic])]
            assert reader.timestamps(topic) == expected and len(expected) == 7
            assert reader.timestamps('/missing') == []
            assert list(reader.messages(['/missing'])) == []
