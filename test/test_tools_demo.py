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
    assert '| synth | python:fake_models:make_model |' in (out / 'summary.md').read_text()
    assert summary['clips']['bikes']['network'] == 'python:fake_models:make_model'
    assert os.path.getsize(out / 'node_synth_bikes.log') > 0  # one node: one network for both


def test_real_clip_gets_the_cached_real_network_and_synthetic_the_shipped_one(
        tmp_path, monkeypatch):
    from evs_ros.config import EvsConfig, ModelConfig
    from evs_ros.tools.demo import clip_networks
    from local_http import isolate_caches
    isolate_caches(tmp_path, monkeypatch)
    assert clip_networks(EvsConfig(), ['synth', 'bikes']) == {
        'synth': 'icnet:default', 'bikes': 'icnet:default'}
    cached = tmp_path / 'xdg' / 'evs_ros' / 'espnetv2-s2-cityscapes'
    cached.mkdir(parents=True)
    (cached / 'espnetv2_s_2.0_city_1024x512.pth').write_bytes(b'a cached file')
    assert clip_networks(EvsConfig(), ['synth', 'bikes']) == {
        'synth': 'icnet:default', 'bikes': 'weights:espnetv2-s2-cityscapes'}
    explicit = EvsConfig(model=ModelConfig(backend='icnet:default'))
    assert set(clip_networks(explicit, ['synth', 'bikes']).values()) == {'icnet:default'}
