"""Evaluation of operating points (paper §4.1 protocol) with an oracle network on synthetic data.

The oracle returns the exact ground truth of every frame it has seen rendered, so everything the
evaluation reports is attributable to the pipeline: keyframes are perfect, propagated frames lose
accuracy through flow errors only.
"""

import json
import math
import time

import cv2
import numpy as np
import pytest

from evs_ros.config import BASELINE, OPERATING_POINTS, EvsConfig
from evs_ros.data.cityscapes import write_snippet
from evs_ros.data.labels import CLASS_NAMES, IGNORE
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.models.base import Prediction
from evs_ros.evaluation import EvalSnippet, cityscapes_snippets, evaluate, table1
from evs_ros.evaluation.runtime_runs import runtime_first_frame
from evs_ros.pipeline.network_input import resize_for_network
from evs_ros.pipeline.scheduler import effective_interval
from evs_ros.tools.common import parse_operating_points

SIZE_WH = (192, 96)
SEED = 2_000_003
MAX_PROPAGATIONS = 4


class OracleModel:
    """Returns one-hot ground truth for frames registered with their labels (D=1 and D=0.5)."""

    num_classes = len(CLASS_NAMES)

    def __init__(self):
        self._labels = {}

    def register(self, image_bgr, labels):
        for downscale in (1.0, 0.5):
            small = resize_for_network(image_bgr, downscale)  # as the pipeline feeds it
            size_wh = (small.shape[1], small.shape[0])
            self._labels[small.tobytes()] = cv2.resize(labels, size_wh,
                                                       interpolation=cv2.INTER_NEAREST)

    def predict(self, image_bgr):
        labels = self._labels[image_bgr.tobytes()]
        probs = np.eye(self.num_classes, dtype=np.float32)[labels].transpose(2, 0, 1)
        return Prediction(probs=np.ascontiguousarray(probs))


@pytest.fixture(scope='module')
def rendered():
    return list(render_snippet(SynthConfig(width=SIZE_WH[0], height=SIZE_WH[1], seed=SEED)))


@pytest.fixture(scope='module')
def oracle_report(rendered):
    model = OracleModel()
    for frame in rendered:
        model.register(frame.image_bgr, frame.labels)
    snippet = EvalSnippet('synth', [f.image_bgr for f in rendered], rendered[19].labels, 19)
    report = evaluate([snippet], model, None, list(OPERATING_POINTS.values()), EvsConfig(),
                      figure_propagations=MAX_PROPAGATIONS)
    return report


def by_name(report):
    return {entry['name']: entry for entry in report['operating_points']}


def test_report_is_strict_json_with_baseline_first(oracle_report):
    json.dumps(oracle_report, allow_nan=False)
    names = [entry['name'] for entry in oracle_report['operating_points']]
    assert names == [BASELINE.name] + list(OPERATING_POINTS)
    assert oracle_report['resolution'] == f'{SIZE_WH[0]}x{SIZE_WH[1]}'
    assert by_name(oracle_report)[BASELINE.name]['speedup'] == 1.0


def test_annotated_frame_is_worst_case_propagation_count(oracle_report):
    for name, entry in by_name(oracle_report).items():
        op = BASELINE if name == BASELINE.name else OPERATING_POINTS[name]
        if op.adaptive:
            assert 0 <= entry['propagations_at_annotated'] <= effective_interval(op) - 1
        else:
            assert entry['propagations_at_annotated'] == op.keyframe_interval - 1, name
    assert by_name(oracle_report)[BASELINE.name]['propagations_at_annotated'] == 0


def test_frames_run_from_the_worst_case_start_to_the_snippet_end(oracle_report):
    for name, entry in by_name(oracle_report).items():
        op = BASELINE if name == BASELINE.name else OPERATING_POINTS[name]
        expected_frames = 30 - (19 - (effective_interval(op) - 1))
        assert entry['frames'] == expected_frames, name
        if not op.adaptive:
            assert entry['keyframes'] == math.ceil(expected_frames / op.keyframe_interval)


def test_oracle_keyframes_are_perfect_and_propagation_loses_accuracy(oracle_report):
    entries = by_name(oracle_report)
    assert entries[BASELINE.name]['miou'] == pytest.approx(1.0)
    assert entries['EVS01']['miou'] == pytest.approx(1.0)
    for name in ('EVS05', 'EVS07', 'EVS10'):
        assert 0.3 < entries[name]['miou'] < 1.0, name
    # a moving camera: warping with DIS beats holding the labels (Table 2, W on vs off)
    assert entries['EVS07']['miou'] > entries['EVS08']['miou']
    assert entries['EVS10']['miou'] > entries['EVS11']['miou']
    per_class = entries[BASELINE.name]['per_class_iou']
    assert list(per_class) == list(CLASS_NAMES)
    assert all(value is None or value == pytest.approx(1.0) for value in per_class.values())


def test_figure6_starts_perfect_and_degrades(oracle_report):
    figure = oracle_report['figure6']
    assert figure['propagations'] == list(range(MAX_PROPAGATIONS + 1))
    for method in ('dis', 'farneback'):
        mious = figure['methods'][method]['miou']
        assert mious[0] == pytest.approx(1.0)
        assert mious[-1] < 1.0
    # N propagations of pure DIS propagation is what EVS with S = N + 1, R off, reports
    assert figure['methods']['dis']['miou'][4] == pytest.approx(
        by_name(oracle_report)['EVS07']['miou'], abs=1e-6)


def test_figure7_collects_fractions_at_each_age(oracle_report):
    entries = oracle_report['figure7']['by_propagations']
    for k in (1, 2, 4):
        entry = entries[str(k)]
        assert entry['n'] == MAX_PROPAGATIONS - k + 1  # one sample per DIS run with N >= k
        assert sum(entry['counts']) == entry['n']
        assert all(0.0 <= value <= 1.0 for value in entry['fractions'])


def test_table1_recovery_is_with_minus_without():
    def entry(name, miou, road):
        return {'name': name, 'miou': miou, 'per_class_iou': {'road': road, 'sky': None}}
    results = [entry('PERFRAME', 0.8, 0.9), entry('EVS03', 0.6, 0.7), entry('EVS02', 0.65, 0.75),
               entry('EVS07', 0.5, 0.5)]
    table = table1(results)
    assert [row['case'] for row in table['rows']] == ['S=2']  # EVS06 missing: S=5 left out
    row = table['rows'][0]
    assert row['propagations'] == 1
    assert row['recovery']['miou'] == pytest.approx(0.05)
    assert row['recovery']['per_class_iou'] == {'road': pytest.approx(0.05), 'sky': None}
    assert table['perframe']['miou'] == 0.8


def test_parse_operating_points_accepts_lists_and_all():
    assert len(parse_operating_points(None)) == len(OPERATING_POINTS)
    assert [op.name for op in parse_operating_points(['evs3,EVS07', 'adaptive'])] == [
        'EVS03', 'EVS07', 'ADAPTIVE']
    with pytest.raises(ValueError):
        parse_operating_points(['EVS99'])


def test_parse_operating_points_sweeps_the_adaptive_threshold():
    swept = parse_operating_points(['ADAPTIVE@0.03,adaptive@0.05', 'ADAPTIVE'])
    assert [op.name for op in swept] == ['ADAPTIVE@0.03', 'ADAPTIVE@0.05', 'ADAPTIVE']
    assert [op.adaptive_threshold for op in swept] == [0.03, 0.05, 0.01]
    assert all(op.adaptive for op in swept)
    for text, reason in (('EVS05@0.03', 'adaptive'), ('ADAPTIVE@high', 'not a number'),
                         ('ADAPTIVE@2', r'adaptive_threshold=2.0: must be in \[0.0, 1.0\]')):
        with pytest.raises(ValueError, match=reason):
            parse_operating_points([text])


def test_cityscapes_reader_gives_annotated_frame_and_resizes(tmp_path):
    small = [f for f in render_snippet(SynthConfig(width=64, height=32, seed=SEED))]
    small[19].labels[0, :4] = IGNORE
    write_snippet(str(tmp_path), 'val', 'synthval', 0, small)
    snippets = list(cityscapes_snippets(str(tmp_path), 'val'))
    assert len(snippets) == 1 and snippets[0].annotated_index == 19
    assert len(snippets[0].frames) == 30
    np.testing.assert_array_equal(snippets[0].gt_labels, small[19].labels)
    resized = next(cityscapes_snippets(str(tmp_path), 'val', size_wh=(32, 16)))
    assert resized.frames[0].shape == (16, 32, 3) and resized.gt_labels.shape == (16, 32)


class SlowOracle(OracleModel):
    """The oracle, taking ``delay_s`` per keyframe like a network slower than the flow."""

    def __init__(self, delay_s):
        super().__init__()
        self.delay_s = delay_s

    def predict(self, image_bgr):
        time.sleep(self.delay_s)
        return super().predict(image_bgr)


def runtime_report(rendered, model, names):
    for frame in rendered:
        model.register(frame.image_bgr, frame.labels)
    snippet = EvalSnippet('synth', [f.image_bgr for f in rendered], rendered[19].labels, 19)
    ops = [OPERATING_POINTS[name] for name in names]
    return evaluate([snippet], model, None, ops, EvsConfig(), runtime=True)


def test_runtime_keys_every_scheduled_keyframe_and_the_oracle_score(rendered):
    report = runtime_report(rendered, OracleModel(), ['EVS03', 'EVS10', 'EVS14'])
    json.dumps(report, allow_nan=False)
    assert report['perframe_hz_both_cores'] > 0
    entries = by_name(report)
    assert entries[BASELINE.name]['runtime_speedup'] == 1.0
    for name in ('EVS03', 'EVS10', 'EVS14'):
        op, entry = OPERATING_POINTS[name], entries[name]
        assert entry['runtime_hz'] > 0 and entry['runtime_speedup'] > 0
        first = runtime_first_frame(op, EvalSnippet('s', [None] * 30, None, 19))
        assert entry['runtime_keyframes'] == math.ceil((30 - first) / op.keyframe_interval)
        assert 0.0 < entry['runtime_miou'] <= 1.0


def test_runtime_accuracy_sees_keyframes_that_arrive_late(rendered):
    """A network slower than S frames of flow.

    The annotated frame still derives from the keyframe one interval earlier (age 2S-1), which the
    synchronous protocol never shows.
    """
    report = runtime_report(rendered, SlowOracle(0.12), ['EVS03'])
    entry = by_name(report)['EVS03']
    assert entry['propagations_at_annotated'] == 1
    assert entry['runtime_ages_at_annotated'] == [3]
    assert entry['runtime_miou'] < entry['miou']
