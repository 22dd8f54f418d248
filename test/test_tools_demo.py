"""`evs demo` end to end: installed node, real DDS, both built-in clips, report files."""

import json
import os
import subprocess

import cv2


def test_demo_writes_video_contact_sheet_and_summary(ros_env, tmp_path):
    out = tmp_path / 'demo'
    command = ['evs', 'demo', '--out', str(out), '--backend', 'python:fake_models:make_model',
               '--refiner', '', '--synth-size', '256x128', '--synth-frames', '12',
               '--bikes-frames', '12', '--operating-point', 'EVS07']
    completed = subprocess.run(command, env=ros_env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary['clips']) == {'synth', 'bikes'}
    for clip in summary['clips'].values():
        assert clip['frames_sent'] == 12
        assert 0 < clip['frames_with_labels'] <= 12
        assert clip['keyframes'] >= 1
        assert clip['latency_ms']['p50'] > 0
    assert 0.0 <= summary['clips']['synth']['miou'] <= 1.0
    assert summary['operating_point'] == 'EVS07'
    video = cv2.VideoCapture(str(out / 'synth_overlay.mp4'))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 12
    sheet = cv2.imread(str(out / 'contact_sheet.png'))
    assert sheet is not None and sheet.shape[0] > 100
    assert '| synth |' in (out / 'summary.md').read_text()
    assert os.path.getsize(out / 'node.log') > 0
