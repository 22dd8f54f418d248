"""Keyframe scheduling (paper Table 2; adaptive policy of §5)."""

from dataclasses import replace

import pytest

from evs_ros.config import OPERATING_POINTS, OperatingPoint
from evs_ros.pipeline.scheduler import (
    KeyframeScheduler, keyframe_offset_for_eval, keyframe_pattern,
)

FIXED_PRESETS = [op for op in OPERATING_POINTS.values() if not op.adaptive]


@pytest.mark.parametrize('op', FIXED_PRESETS, ids=lambda op: op.name)
def test_preset_keyframes_every_s_frames(op):
    pattern = keyframe_pattern(op, 60)
    expected = [index % op.keyframe_interval == 0 for index in range(60)]
    assert pattern == expected


def test_evs14_runs_network_on_every_17th_frame():
    pattern = keyframe_pattern(OPERATING_POINTS['EVS14'], 40)
    assert [i for i, key in enumerate(pattern) if key] == [0, 17, 34]


def test_frames_since_keyframe_counts_up_and_resets():
    scheduler = KeyframeScheduler(OPERATING_POINTS['EVS05'])
    assert scheduler.frames_since_keyframe == -1
    ages = []
    for _ in range(7):
        scheduler.decide()
        ages.append(scheduler.frames_since_keyframe)
    assert ages == [0, 1, 2, 0, 1, 2, 0]
    scheduler.reset()
    assert scheduler.decide() is True


def test_operating_point_change_takes_effect_on_next_frame():
    scheduler = KeyframeScheduler(OPERATING_POINTS['EVS10'])
    flags = [scheduler.decide() for _ in range(6)]      # frames 0..5, keyframe at 0 only
    scheduler.set_operating_point(OPERATING_POINTS['EVS05'])   # S=3: age 5 >= 3
    flags.append(scheduler.decide())
    flags += [scheduler.decide() for _ in range(3)]
    assert flags == [True] + [False] * 5 + [True, False, False, True]


def test_adaptive_keyframe_when_fraction_exceeds_threshold():
    op = OperatingPoint(name='A', adaptive=True, adaptive_threshold=0.05,
                        max_keyframe_interval=100)
    fractions = [0.0, 0.01, 0.02, 0.2, 0.0, 0.01, 0.06, 0.0, 0.0, 0.0]
    pattern = keyframe_pattern(op, len(fractions), fractions)
    # frame i+1 is a keyframe when frame i reported more than 5 % inconsistent pixels
    assert [i for i, key in enumerate(pattern) if key] == [0, 4, 7]


def test_adaptive_never_exceeds_max_interval_and_ignores_unknown():
    op = OperatingPoint(name='A', adaptive=True, adaptive_threshold=0.05,
                        max_keyframe_interval=4, keyframe_interval=2)
    fractions = [float('nan')] * 6 + [None] * 6
    pattern = keyframe_pattern(op, 12, fractions)
    assert [i for i, key in enumerate(pattern) if key] == [0, 4, 8]


def test_force_keyframe():
    scheduler = KeyframeScheduler(OPERATING_POINTS['EVS10'])
    scheduler.decide()
    scheduler.decide()
    scheduler.force_keyframe()
    assert scheduler.decide() is True
    assert scheduler.frames_since_keyframe == 0


@pytest.mark.parametrize('op', FIXED_PRESETS, ids=lambda op: op.name)
def test_eval_offset_puts_annotated_frame_at_worst_case_age(op):
    annotated = 19
    start = keyframe_offset_for_eval(op, annotated)
    pattern = keyframe_pattern(op, annotated - start + 1)
    assert pattern[0] is True
    last_keyframe = max(i for i, key in enumerate(pattern) if key)
    assert (annotated - start) - last_keyframe == op.keyframe_interval - 1


def test_eval_offset_adaptive_uses_max_interval_and_clips():
    op = replace(OPERATING_POINTS['ADAPTIVE'], max_keyframe_interval=7)
    assert keyframe_offset_for_eval(op, 19) == 13
    assert keyframe_offset_for_eval(OPERATING_POINTS['EVS14'], 10) == 0
    assert keyframe_offset_for_eval(OPERATING_POINTS['EVS14'], 19, propagations=3) == 16
    with pytest.raises(ValueError):
        keyframe_offset_for_eval(OPERATING_POINTS['EVS14'], 19, propagations=-1)


def test_adaptive_sums_inconsistency_since_the_keyframe():
    op = OperatingPoint(name='A', adaptive=True, adaptive_threshold=0.01,
                        max_keyframe_interval=50)
    # 0.4 % per propagated frame (keyframes report nothing): each below the threshold, their
    # sum passes 1 % after three propagated frames.
    scheduler, pattern, fraction = KeyframeScheduler(op), [], None
    for _ in range(10):
        keyframe = scheduler.decide(fraction)
        pattern.append(keyframe)
        fraction = float('nan') if keyframe else 0.004
    assert pattern == [True, False, False, False, True, False, False, False, True, False]
    quiet = keyframe_pattern(op, 10, [0.0005] * 10)
    assert quiet == [True] + [False] * 9
    scheduler = KeyframeScheduler(op)
    scheduler.decide(None)
    scheduler.decide(0.004)
    assert scheduler.accumulated_fraction == pytest.approx(0.004)
