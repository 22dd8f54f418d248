"""Operating points through the real-time runtime.

Throughput on both cores and the accuracy of its real outputs, late keyframes and catch-up included
(design §4, §7).

Protocol, per operating point and snippet:

* A fresh stream of the two-worker runtime (a flow worker, the shared inference worker, with the
  threads of ``config.runtime``: ``inference_threads``, ``flow_prefetch_threads``) is fed the
  snippet's frames as fast as it takes them (a blocking submit: nothing is dropped) with
  ``runtime.wait_for_keyframes`` on, so every scheduled keyframe runs, none is superseded, and
  the flow worker may run ahead of the network by one keyframe interval, as the paper's GPU/CPU
  split does.
* Feeding starts one keyframe interval before the worst-case start of the synchronous protocol
  (:func:`runtime_first_frame`): the keyframe that the annotated frame derives from is then an
  asynchronous one, requested while frames keep coming. If its result has not arrived when the
  annotated frame is emitted, that frame carries older labels, and the runtime catches up later:
  the score sees exactly what a user would have got.
* ``runtime_hz`` = frames after the first / time from the first output until the last output
  is out *and* the network has finished every keyframe requested (a keyframe still running when
  the snippet ends is work the stream asked for; the first frame always waits for its own
  keyframe, which the per-frame network pays on every frame).
  ``runtime_speedup`` = ``runtime_hz`` / the per-frame network's Hz with all its threads on both
  cores (:func:`perframe_hz_both_cores`), measured in the same run.
"""

import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Sequence

from evs_ros.config import BASELINE, EvsConfig, OperatingPoint
from evs_ros.data.json_values import finite_or_none
from evs_ros.data.metrics import ConfusionMatrix
from evs_ros.evaluation.snippets import EvalSnippet, Scoring
from evs_ros.pipeline.network_input import input_short_side, network_scale, resize_for_network
from evs_ros.pipeline.runtime import EvsRuntime
from evs_ros.pipeline.scheduler import effective_interval

DRAIN_TIMEOUT_S = 600.0


def runtime_first_frame(op: OperatingPoint, snippet: EvalSnippet) -> int:
    """One keyframe interval before the synchronous worst-case start (when the snippet has it).

    Frame 0 for labelled video (every frame scored).
    """
    start = snippet.first_frame(op)
    interval = effective_interval(op)
    return start - interval if start >= interval else start


@dataclass
class RuntimeOpRun:
    """What the runtime gave for one operating point, accumulated over snippets."""

    op: OperatingPoint
    confusion: ConfusionMatrix
    frames: int = 0
    wall_s: float = 0.0
    keyframes: int = 0
    annotated_ages: List[int] = field(default_factory=list)

    @property
    def hz(self) -> float:
        """Frames per second after each snippet's first output (NaN before any)."""
        return self.frames / self.wall_s if self.wall_s > 0 else float('nan')

    def summary(self, perframe_hz: float) -> Dict[str, object]:
        """Return the ``runtime_*`` keys of this operating point's JSON entry."""
        return {'runtime_hz': finite_or_none(self.hz, 3),
                'runtime_speedup': finite_or_none(self.hz / perframe_hz, 4),
                'runtime_miou': finite_or_none(self.confusion.miou()) if self.annotated_ages
                else None,
                'runtime_keyframes': self.keyframes,
                'runtime_ages_at_annotated': list(self.annotated_ages)}


class RuntimeEvaluator:
    """Runs operating points through one :class:`~evs_ros.pipeline.runtime.EvsRuntime`.

    Args:
        model, refiner: the networks (shared by every stream).
        operating_points: the points to run (the per-frame baseline is measured separately).
        config: flow / IAM / runtime settings; keyframe waiting is switched on here and the
            buffer holds at least two frames.
        scoring: the ground truth's classes (:class:`~evs_ros.evaluation.snippets.Scoring`).
    """

    def __init__(self, model, refiner, operating_points: Sequence[OperatingPoint],
                 config: EvsConfig, scoring: Scoring):
        runtime_config = replace(config.runtime, wait_for_keyframes=True,
                                 input_queue_size=max(2, config.runtime.input_queue_size))
        self.config = replace(config, runtime=runtime_config)
        self.runtime = EvsRuntime(self.config, model, refiner)
        self.runs = [RuntimeOpRun(op, scoring.confusion())
                     for op in operating_points if op.name != BASELINE.name]

    def warm_up(self, snippet: EvalSnippet) -> None:
        """One untimed pass (lazy initialisation of the workers and the network)."""
        if self.runs:
            self._play(self.runs[0].op, snippet, 0)

    def add(self, snippet: EvalSnippet) -> None:
        """Feed ``snippet`` through a fresh stream per operating point; time and score it."""
        for run in self.runs:
            first = runtime_first_frame(run.op, snippet)
            outputs = self._play(run.op, snippet, first)
            self._record(run, snippet, outputs)

    def _play(self, op: OperatingPoint, snippet: EvalSnippet, first: int) -> Dict[int, tuple]:
        outputs: Dict[int, tuple] = {}
        stream = self.runtime.add_stream(
            f'eval-{op.name}', lambda result: outputs.setdefault(
                result.meta, (time.perf_counter(), result)),
            replace(self.config, operating_point=op))
        try:
            for index in range(first, len(snippet.frames)):
                stream.submit(snippet.frames[index], index + 1, meta=index, wait=True)
            if not (stream.drain(DRAIN_TIMEOUT_S)
                    and self.runtime.inference.wait_idle(DRAIN_TIMEOUT_S)):
                raise RuntimeError(f'{op.name}: the runtime did not finish a snippet')
            outputs[-1] = (time.perf_counter(), None)  # all requested work done
        finally:
            self.runtime.remove_stream(f'eval-{op.name}')
        return outputs

    @staticmethod
    def _record(run: RuntimeOpRun, snippet: EvalSnippet, outputs: Dict[int, tuple]) -> None:
        finished_s = outputs.pop(-1)[0]
        times = sorted(t for t, _ in outputs.values())
        run.frames += len(times) - 1
        run.wall_s += max(times[-1], finished_s) - times[0]
        run.keyframes += sum(result.info.keyframe for _, result in outputs.values())
        for index, labels in snippet.scored().items():
            output = outputs.get(index)
            if output is not None:
                run.confusion.update(output[1].labels, labels)
                run.annotated_ages.append(output[1].info.frames_since_keyframe)

    def results(self, perframe_hz: float) -> Dict[str, Dict[str, object]]:
        """``{operating point name: runtime_* keys}``."""
        return {run.op.name: run.summary(perframe_hz) for run in self.runs}

    def close(self) -> None:
        """Stop the runtime's threads."""
        self.runtime.close()


class BothCoresBaseline:
    """The per-frame network with ``threads`` torch threads (both cores).

    One frame after the other in the calling thread, over the frames the synchronous baseline
    evaluates (annotated frame to the end of each snippet). Measured before the runtime runs on the
    same snippet. On the main thread: torch's intra-op threads speed the network up there (2
    threads: 1.6-1.9x on the 2-core dev VM) and hardly in a worker thread, so this is the per-frame
    network at its best.
    """

    def __init__(self, model, threads: int = 2):
        self.model, self.threads = model, threads
        self.frames, self.wall_s = 0, 0.0

    def add(self, snippet: EvalSnippet) -> None:
        """Time the per-frame network on ``snippet`` with all its threads."""
        import torch
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            start = snippet.first_frame(BASELINE)
            for image in snippet.frames[start:]:
                begin = time.perf_counter()
                self.model.predict(resize_for_network(image, network_scale(
                    image.shape[:2], BASELINE.downscale, input_short_side(self.model))))
                self.wall_s += time.perf_counter() - begin
                self.frames += 1
        finally:
            torch.set_num_threads(previous)

    @property
    def hz(self) -> float:
        """Frames per second (NaN before any frame)."""
        return self.frames / self.wall_s if self.wall_s > 0 else float('nan')

    def close(self) -> None:
        """Nothing runs in the background."""
