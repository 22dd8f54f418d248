"""Camera capacity: how many cameras at a frame rate one node serves (design §4, issue 13).

N cameras share one runtime (one network, one inference worker) with a stream (a flow worker)
each, as the node runs them. Each camera is a thread that submits its clip's frames at the rate
(staggered phases, never waiting: a late frame is the runtime's problem, as with a real driver),
for ``seconds``; clips play back and forth so motion never cuts. N cameras are *served* when:

* every frame is labelled: after the first ``WARM_UP_S`` (each camera's first frame waits for its
  own first keyframe, as in the node, and the cameras start together), no frame is dropped by the
  latest-frame buffer and none is rejected;
* no backlog grows: the median latency of the last quarter of the frames is at most
  ``BACKLOG_RATIO`` times that of the first quarter (and at least ``BACKLOG_MIN_MS`` above it
  before it counts).

Each camera's mIoU is scored on every ``score_stride``-th frame against its ground truth (the
synthetic benchmark has labels on every frame).
"""

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

from evs_ros.config import EvsConfig
from evs_ros.data.metrics import ConfusionMatrix
from evs_ros.data.json_values import finite_or_none
from evs_ros.pipeline.runtime import EvsRuntime
from evs_ros.pipeline.stats import percentiles

BACKLOG_RATIO = 1.5
BACKLOG_MIN_MS = 20.0
WARM_UP_S = 1.0


@dataclass
class CameraClip:
    """A camera's frames (uint8 (H, W, 3) BGR) and their uint8 (H, W) ground truth."""

    name: str
    frames: List[np.ndarray]
    labels: List[np.ndarray]

    def index(self, count: int) -> int:
        """Return the frame shown at step ``count``: 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ..."""
        period = max(1, 2 * len(self.frames) - 2)
        position = count % period
        return position if position < len(self.frames) else period - position


@dataclass
class CameraRecord:
    """What one camera sent and got back during a trial."""

    clip: CameraClip
    sent: List[float] = field(default_factory=list)
    received: Dict[int, float] = field(default_factory=dict)
    scored: Dict[int, np.ndarray] = field(default_factory=dict)
    keyframes: int = 0


class CameraTrial:
    """N cameras for ``seconds`` at ``rate_hz`` on one fresh runtime.

    Args:
        model, refiner: the networks the runtime shares.
        config: the node's settings (operating point, flow, runtime).
        num_classes: classes of the confusion matrices.
    """

    def __init__(self, model, refiner, config: EvsConfig, num_classes: int,
                 rate_hz: float = 17.0, seconds: float = 10.0, score_stride: int = 2):
        self.model, self.refiner, self.config = model, refiner, config
        self.num_classes = num_classes
        self.rate_hz, self.seconds, self.score_stride = rate_hz, seconds, score_stride

    def run(self, clips: Sequence[CameraClip]) -> Dict[str, object]:
        """Play every clip as one camera; returns the trial's summary."""
        runtime = EvsRuntime(self.config, self.model, self.refiner)
        records = [CameraRecord(clip) for clip in clips]
        try:
            streams = [runtime.add_stream(clip.name, self._collector(record))
                       for clip, record in zip(clips, records)]
            self._play(streams, records)
            for stream in streams:
                stream.drain(30.0)
            stats = runtime.stats()
        finally:
            runtime.close()
        return self._summary(records, stats)

    def _collector(self, record: CameraRecord):
        def on_output(result):
            step = result.meta
            record.received[step] = time.monotonic()
            record.keyframes += int(result.info.keyframe)
            if step % self.score_stride == 0:
                record.scored[step] = result.labels
        return on_output

    def _play(self, streams, records: List[CameraRecord]) -> None:
        start = time.monotonic() + 0.2
        threads = [threading.Thread(target=self._camera, args=(stream, record, start, i / len(
            streams) / self.rate_hz), daemon=True)
            for i, (stream, record) in enumerate(zip(streams, records))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _camera(self, stream, record: CameraRecord, start_s: float, phase_s: float) -> None:
        for step in range(int(self.seconds * self.rate_hz)):
            due = start_s + phase_s + step / self.rate_hz
            time.sleep(max(0.0, due - time.monotonic()))
            record.sent.append(time.monotonic())
            image = record.clip.frames[record.clip.index(step)]
            stream.submit(image, 1_000_000_000 + step * 1_000_000, meta=step)

    def _summary(self, records: List[CameraRecord], stats) -> Dict[str, object]:
        cameras = [self._camera_summary(record, stats[record.clip.name]) for record in records]
        served = all(camera['served'] for camera in cameras)
        return {'cameras': len(records), 'served': served, 'per_camera': cameras}

    def _camera_summary(self, record: CameraRecord, stats) -> Dict[str, object]:
        warm = int(WARM_UP_S * self.rate_hz)
        steps = [s for s in range(warm, len(record.sent)) if s in record.received]
        latency_ms = [(record.received[s] - record.sent[s]) * 1000.0 for s in steps]
        quarter = max(1, len(latency_ms) // 4)
        first, last = np.median(latency_ms[:quarter]), np.median(latency_ms[-quarter:])
        growing = bool(last > BACKLOG_RATIO * first and last - first > BACKLOG_MIN_MS)
        missing = [s for s in range(warm, len(record.sent)) if s not in record.received]
        return {'name': record.clip.name, 'frames_sent': len(record.sent),
                'missing_after_warm_up': len(missing),
                'frames_labelled': len(record.received), 'dropped': int(stats['dropped']),
                'rejected': int(stats['rejected']), 'keyframes': record.keyframes,
                'latency_ms': percentiles(latency_ms),
                'latency_first_quarter_ms': round(float(first), 3),
                'latency_last_quarter_ms': round(float(last), 3), 'backlog_growing': growing,
                'miou': self._miou(record), 'served': not missing and not growing}

    def _miou(self, record: CameraRecord) -> Optional[float]:
        confusion = ConfusionMatrix(self.num_classes)
        for step, labels in record.scored.items():
            confusion.update(labels, record.clip.labels[record.clip.index(step)])
        return finite_or_none(confusion.miou()) if record.scored else None


def camera_capacity(trial: CameraTrial, clips: Sequence[CameraClip], max_cameras: int,
                    progress=None) -> Dict[str, object]:
    """Trials with 1, 2, ... cameras until one is not served (or ``max_cameras``).

    Returns ``{'cameras_served': N (the largest served count), 'trials': [...]}``.
    """
    trials, served = [], 0
    for count in range(1, max_cameras + 1):
        result = trial.run([replace(clips[i % len(clips)], name=f'camera{i}')
                            for i in range(count)])
        trials.append(result)
        if progress is not None:
            progress(result)
        if not result['served']:
            break
        served = count
    return {'cameras_served': served, 'trials': trials}


def mean_miou(result: Dict[str, object]) -> Optional[float]:
    """Mean of the cameras' mIoU in one trial (None without scores)."""
    values = [c['miou'] for c in result['per_camera'] if c['miou'] is not None]
    return round(float(np.mean(values)), 6) if values else None


def frames_per_second(result: Dict[str, object], seconds: float) -> float:
    """Labelled frames per second over all cameras of one trial."""
    total = sum(c['frames_labelled'] for c in result['per_camera'])
    return total / seconds if seconds > 0 else math.nan
