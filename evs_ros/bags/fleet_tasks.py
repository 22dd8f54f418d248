"""The Ray tasks of ``evs fleet`` (imported only when a fleet runs: it imports ``ray``).

- :func:`label_bag_task`: a whole bag, like ``evs bag``, written atomically with its summary;
- :func:`plan_task`: the time chunks of a long bag (:mod:`evs_ros.bags.chunks`);
- :func:`chunk_task`: one chunk into a part bag (kept until the merge, so a rerun after an
  interruption reuses the finished chunks);
- :func:`merge_task`: the input plus its parts into the output bag; Ray starts it when every
  chunk task it takes as an argument has finished;
- :func:`preflight_task`: loads the network once and checks the paths before anything else runs;
- :class:`Progress`: an actor that every task tells how many frames it has done.

Tasks raise on a bad bag (not retried: ``retry_exceptions`` stays off); a worker that dies is
Ray's to retry (``max_retries``). Each task starts from its inputs alone, writes under temporary
names and renames when complete, so a retried task gives the result of an uninterrupted one.
"""

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import ray

from evs_ros.bags import labelling
from evs_ros.bags.chunks import Chunk, plan_chunks
from evs_ros.bags.manifest import DONE, checksum, fingerprint, now_utc
from evs_ros.bags.network import apply_threads, load_labeller
from evs_ros.bags.weights_dir import materialize, use_weights_dir
from evs_ros.config import EvsConfig
from evs_ros.data.rosbag_io import BagReader

PROGRESS_PERIOD_S = 1.0


@dataclass(frozen=True)
class BagJob:
    """One input bag and where its output goes."""

    key: str
    """relative path: the manifest key and the output's place under OUT"""
    input: str
    output: str
    frames: int = 0
    """image messages, from the metadata (0 when unknown)"""
    duration_s: float = 0.0


@dataclass(frozen=True)
class TaskSettings:
    """What every task of one fleet run shares."""

    config: EvsConfig
    image_topic: str
    storage: Optional[str]
    chunk_s: float
    settings_hash: str
    parts_root: str
    summary_extra: dict = field(default_factory=dict)
    weights: Optional[Tuple[str, list]] = None
    """(checksum, [ObjectRef of the packed --weights-dir]) or None: the standard caches"""
    progress: object = None
    """a :class:`Progress` actor handle, or None"""


@ray.remote(num_cpus=0)
class Progress:
    """Frames done per task key; a retried task's new count replaces the dead attempt's."""

    def __init__(self):
        self._frames = {}

    def report(self, key: str, frames: int) -> None:
        self._frames[key] = frames

    def frames(self) -> dict:
        return dict(self._frames)


def worker_name() -> str:
    return f'{socket.gethostname()}/{os.getpid()}'


def _worker_config(settings: TaskSettings) -> EvsConfig:
    """Return the config with the shipped weights folder in place (unpacked once per machine)."""
    config = settings.config
    if settings.weights is not None:
        digest, (ref,) = settings.weights
        root = materialize(lambda: ray.get(ref), digest)
        config = replace(config, model=use_weights_dir(root, config.model))
    apply_threads(config)
    return config


class _Reporter:
    """Calls ``progress.report`` at most once per PROGRESS_PERIOD_S (fire and forget)."""

    def __init__(self, progress, key: str):
        self._progress, self._key, self._last = progress, key, 0.0

    def __call__(self, frames: int, final: bool = False) -> None:
        now = time.monotonic()
        if self._progress is not None and (final or now - self._last >= PROGRESS_PERIOD_S):
            self._last = now
            self._progress.report.remote(self._key, frames)


@ray.remote
def preflight_task(settings: TaskSettings, first_input: str, out_dir: str) -> dict:
    """Load the network and check that this worker sees the input and can write the output."""
    if not Path(first_input).exists():
        raise FileNotFoundError(
            f'worker {worker_name()} does not see {first_input}: IN and OUT must be at the same '
            'path on every node (a shared file system)')
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    probe = Path(out_dir) / labelling.temp_path(Path(out_dir) / 'probe').name
    probe.write_text('evs fleet\n')
    probe.unlink()
    config = _worker_config(settings)
    start = time.perf_counter()
    labeller = load_labeller(config, cache=True)
    return {'worker': worker_name(), 'load_s': time.perf_counter() - start,
            'network': labeller.network}


@ray.remote
def label_bag_task(job: BagJob, settings: TaskSettings) -> dict:
    """Label a whole bag (as ``evs bag``) into ``job.output``; return its manifest entry."""
    start = time.perf_counter()
    config = _worker_config(settings)
    labeller = load_labeller(config, cache=True)
    report = _Reporter(settings.progress, job.key)

    def write(temp: Path):
        return labelling.process_bag(Path(job.input), temp, settings.image_topic, labeller,
                                     labeller.colorize, settings.storage, report)

    summary = labelling.write_atomically(Path(job.output), write, settings.summary_extra)
    report(summary.frames, final=True)
    busy_s = time.perf_counter() - start
    return _entry(job, settings, summary, [labeller.network], busy_s,
                  [{'worker': worker_name(), 'frames': summary.frames, 'busy_s': busy_s}])


@ray.remote
def plan_task(job: BagJob, settings: TaskSettings) -> List[Chunk]:
    """Plan the chunks of ``job``'s bag (its image topic's times, from the index if it can)."""
    with BagReader(Path(job.input)) as reader:
        labelling.check_image_topic(reader.topics(), settings.image_topic)
        timestamps = reader.timestamps(settings.image_topic)
    return plan_chunks(timestamps, settings.chunk_s, settings.config.operating_point)


def parts_dir(job: BagJob, settings: TaskSettings, input_fingerprint: str) -> Path:
    """Where the parts of ``job`` live.

    Named by the settings and the input, so a changed input or config never reuses old parts.
    """
    return Path(settings.parts_root) / job.key / \
        f'{settings.settings_hash}-{input_fingerprint[:16]}'


@ray.remote
def chunk_task(job: BagJob, settings: TaskSettings, chunk: Chunk, input_fingerprint: str
               ) -> dict:
    """Label one chunk into a part bag (reused when a finished one is already there)."""
    start = time.perf_counter()
    folder = parts_dir(job, settings, input_fingerprint)
    part = folder / f'chunk-{chunk.index:05d}'
    record = part.with_suffix('.json')
    if record.is_file() and part.is_dir():
        done = json.loads(record.read_text())
        done.update(reused=True, workers=[])
        return done
    folder.mkdir(parents=True, exist_ok=True)
    config = _worker_config(settings)
    labeller = load_labeller(config, cache=True)
    report = _Reporter(settings.progress, f'{job.key}#{chunk.index}')
    with labelling.atomic_bag(part) as temp:
        summary = labelling.label_chunk(Path(job.input), temp, settings.image_topic, labeller,
                                        chunk.start_ns, chunk.stop_ns, labeller.colorize,
                                        report)
    report(summary.frames, final=True)
    result = {'index': chunk.index, 'first_frame': chunk.first_frame,
              'frames': summary.frames, 'skipped_frames': summary.skipped_frames,
              'keyframes': summary.keyframes, 'part': str(part), 'network': labeller.network}
    _write_json_atomically(record, result)
    busy_s = time.perf_counter() - start
    return dict(result, reused=False,
                workers=[{'worker': worker_name(), 'frames': summary.frames, 'busy_s': busy_s}])


def _write_json_atomically(path: Path, data: dict) -> None:
    temp = labelling.temp_path(path)
    temp.write_text(json.dumps(data, sort_keys=True) + '\n')
    os.replace(temp, path)


@ray.remote
def merge_task(job: BagJob, settings: TaskSettings, plan: Sequence[Chunk],
               input_fingerprint: str, *chunk_results: dict) -> dict:
    """Write the output bag from the input and the chunk parts; remove the parts."""
    start = time.perf_counter()
    results = sorted(chunk_results, key=lambda result: result['index'])
    parts = [Path(result['part']) for result in results]

    def write(temp: Path):
        summary = labelling.merge_parts(Path(job.input), temp, settings.image_topic, parts,
                                        settings.storage)
        summary.keyframes = sum(result['keyframes'] for result in results)
        summary.chunks = [(chunk.first_frame, chunk.frames) for chunk in plan]
        return summary

    summary = labelling.write_atomically(Path(job.output), write, settings.summary_extra)
    workers = [w for result in results for w in result['workers']]
    workers.append({'worker': worker_name(), 'frames': 0, 'busy_s': time.perf_counter() - start})
    entry = _entry(job, settings, summary, sorted({result['network'] for result in results}),
                   sum(w['busy_s'] for w in workers), workers,
                   reused_chunks=sum(1 for result in results if result['reused']))
    _remove_parts(job, settings)
    return entry


def _remove_parts(job: BagJob, settings: TaskSettings) -> None:
    """Delete the bag's parts and the folders that only held them."""
    root = Path(settings.parts_root)
    folder = root / job.key
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:
        if parent == root or root not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: another bag's parts
            break


def _entry(job: BagJob, settings: TaskSettings, summary, networks: List[str], busy_s: float,
           workers, reused_chunks: int = 0) -> dict:
    """Return the manifest entry of a labelled bag (checksums read both bags once more)."""
    return {
        'status': DONE, 'input': job.input, 'output': job.output,
        'config_hash': settings.settings_hash,
        'input_sha256': checksum(Path(job.input)),
        'input_fingerprint': fingerprint(Path(job.input)),
        'output_sha256': checksum(Path(job.output)),
        'output_fingerprint': fingerprint(Path(job.output)),
        'frames': summary.frames, 'skipped_frames': summary.skipped_frames,
        'keyframes': summary.keyframes, 'messages': summary.messages_copied,
        'chunks': len(summary.chunks), 'reused_chunks': reused_chunks,
        'busy_s': round(busy_s, 3),
        'workers': [dict(w, busy_s=round(w['busy_s'], 3)) for w in workers],
        'network': networks,
        'finished': now_utc(),
    }
