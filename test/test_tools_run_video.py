"""`evs run`: a video file in, per-frame label PNGs, an overlay mp4 and summary.json out."""

import json

import cv2
import numpy as np

from evs_ros.config import operating_point
from evs_ros.data.video import VideoWriter
from evs_ros.pipeline import keyframe_pattern
from evs_ros.tools import cli

FAKE = 'python:fake_models:make_model'
NUM_FRAMES, WIDTH, HEIGHT = 12, 96, 64


def write_clip(path):
    """Return an mp4 of a smooth random texture panning right by 2 px per frame."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (HEIGHT, WIDTH + 40, 3), dtype=np.uint8),
                            (0, 0), 2.0)
    with VideoWriter(str(path), fps=10.0) as writer:
        for index in range(NUM_FRAMES):
            writer.write(np.ascontiguousarray(base[:, 2 * index:2 * index + WIDTH]))
    return path


def frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_run_writes_labels_overlay_and_summary(tmp_path):
    video = write_clip(tmp_path / 'clip.mp4')
    out = tmp_path / 'out'
    code = cli.main(['run', str(video), '--out', str(out), '--backend', FAKE, '--refiner', '',
                     '--operating-point', 'EVS05', '--max-frames', '10'])
    assert code == 0
    labels = sorted(p.name for p in (out / 'labels').iterdir())
    assert labels == [f'{index:06d}.png' for index in range(10)]
    first = cv2.imread(str(out / 'labels' / labels[0]), cv2.IMREAD_UNCHANGED)
    assert first.shape == (HEIGHT, WIDTH) and first.dtype == np.uint8 and first.max() < 19
    assert frame_count(out / 'overlay.mp4') == 10
    summary = json.loads((out / 'summary.json').read_text())
    pattern = keyframe_pattern(operating_point('EVS05'), 10)
    assert summary['frames'] == 10 and summary['hz'] > 0
    assert summary['keyframe_indices'] == [i for i, key in enumerate(pattern) if key]
    assert summary['keyframes'] == sum(pattern)
    fractions = summary['inconsistent_fraction']
    assert len(fractions) == 10
    assert all((value is None) == key for value, key in zip(fractions, pattern))
    assert {'flow_ms', 'inference_ms', 'total_ms'} <= set(summary['stage_ms'])
    assert summary['stage_ms']['inference_ms']['count'] == sum(pattern)


def test_run_resizes_and_skips_overlay(tmp_path):
    video = write_clip(tmp_path / 'clip.mp4')
    out = tmp_path / 'out'
    code = cli.main(['run', str(video), '--out', str(out), '--backend', FAKE, '--refiner', '',
                     '--operating-point', 'PERFRAME', '--resize', '48x32', '--no-overlay'])
    assert code == 0
    labels = sorted((out / 'labels').iterdir())
    assert len(labels) == NUM_FRAMES
    assert cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED).shape == (32, 48)
    assert not (out / 'overlay.mp4').exists()
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['keyframes'] == NUM_FRAMES and summary['resolution'] == '48x32'


def test_run_reports_a_missing_video(tmp_path, capsys):
    code = cli.main(['run', str(tmp_path / 'none.mp4'), '--out', str(tmp_path / 'o'),
                     '--backend', FAKE, '--refiner', ''])
    assert code == 2
    assert 'none.mp4' in capsys.readouterr().err
