"""Tests for evs_ros.data.video: mp4 round trip and clear errors."""

import numpy as np
import pytest

from evs_ros.data.video import VideoWriter, iter_video, video_fps


def test_mp4_round_trip(tmp_path):
    path = str(tmp_path / 'clip.mp4')
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    with VideoWriter(path, fps=10.0) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames_written == 5
    decoded = list(iter_video(path))
    assert len(decoded) == 5 and decoded[0].shape == (48, 64, 3)
    assert abs(int(decoded[3].mean()) - 120) < 8  # lossy codec
    assert len(list(iter_video(path, max_frames=2, resize=(32, 24)))) == 2
    assert next(iter_video(path, resize=(32, 24))).shape == (24, 32, 3)
    assert video_fps(path) == pytest.approx(10.0)


def test_unreadable_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        next(iter_video(str(tmp_path / 'missing.mp4')))
    bogus = tmp_path / 'bogus.mp4'
    bogus.write_bytes(b'not a video')
    with pytest.raises(IOError):
        next(iter_video(str(bogus)))
