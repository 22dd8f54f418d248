"""``evs fleet IN OUT``: label every bag of a recording archive on a Ray cluster (design.md §8).

Ray does the distribution: one task per bag (:mod:`evs_ros.bags.fleet_tasks`), or for a bag
longer than ``chunk_s`` a plan task, one task per time chunk and a merge task that Ray starts
when its chunks are done; Ray's retries for workers that die; its object store for the shipped
``--weights-dir``; an actor for the frame counts; its dashboard for the cluster. This driver
only submits the tasks, waits for their results (``ray.wait``) and keeps the books:
``OUT/manifest.json`` (:mod:`evs_ros.bags.manifest`), a progress line and the final report
(:mod:`evs_ros.bags.report`).

IN and OUT must be at the same path on every node (a shared file system); each worker reads its
bag from IN and writes its output under OUT itself, so no image passes through the driver.
"""

import errno
import fcntl
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

from evs_ros.bags import report as fleet_report
from evs_ros.bags.discovery import find_bags
from evs_ros.bags.labelling import TEMP_MARK
from evs_ros.bags.manifest import (
    FAILED, STATE_DIR, Manifest, checksum, config_hash, fingerprint, label_settings, now_utc)
from evs_ros.bags.network import fix_backend
from evs_ros.bags.weights_dir import OFFLINE_ENV, absolute_paths, pack
from evs_ros.config import EvsConfig
from evs_ros.data.rosbag_io import BagError, bag_info
from evs_ros.errors import one_line

Log = Callable[[str], None]


@dataclass(frozen=True)
class FleetOptions:
    """How ``evs fleet`` runs (the labels come from the config alone)."""

    image_topic: str = '/camera/image'
    storage: Optional[str] = None
    """output storage, sqlite3 or mcap (None: each input's)"""
    address: Optional[str] = None
    """Ray cluster: 'auto', HOST:PORT or ray://HOST:PORT; None starts a local instance"""
    workers: Optional[int] = None
    """CPUs of the local instance (None: all); refused with an address"""
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    chunk_s: float = 60.0
    """split bags longer than this (bag time, seconds) into chunks; 0 = never"""
    weights_dir: Optional[str] = None
    verify: bool = False
    """decide what is current by checksums (reads every bag) instead of fingerprints"""
    max_retries: int = 3
    """Ray retries of a task whose worker died"""
    dashboard: bool = True
    progress_period_s: float = 5.0
    manifest_period_s: float = 10.0

    def __post_init__(self):
        if self.cpus_per_task <= 0 or self.gpus_per_task < 0:
            raise ValueError('--cpus-per-task must be > 0 and --gpus-per-task >= 0')
        if self.chunk_s < 0:
            raise ValueError(f'--chunk-s {self.chunk_s}: must be >= 0 (0 = never split)')
        if self.workers is not None and self.workers < 1:
            raise ValueError(f'--workers {self.workers}: must be >= 1')
        if self.workers is not None and self.address:
            raise ValueError('--workers sizes a local Ray instance; with --address the '
                             "cluster's own CPUs are used")
        if self.max_retries < 0:
            raise ValueError('--max-retries must be >= 0')


class FleetError(RuntimeError):
    """The run cannot start (no network on the workers, OUT locked, no Ray): one line."""


def run_fleet(source: Path, out_dir: Path, config: EvsConfig, options: FleetOptions,
              log: Log = print) -> dict:
    """Label every bag of ``source`` that is not current in ``out_dir``; return the report.

    Raises:
        FleetError, ValueError, FileNotFoundError: before anything is labelled.
        KeyboardInterrupt: after cancelling the tasks and saving the manifest and report.
    """
    out_dir = Path(out_dir).absolute()
    bags = find_bags(Path(source), exclude=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with OutLock(out_dir):
        removed = remove_leftovers(out_dir)
        run = _FleetRun(bags, out_dir, config, options, log)
        if removed:
            log(f'evs fleet: removed {removed} unfinished output(s) of an interrupted run')
        report = run.execute()
        remove_leftovers(out_dir)  # what the tries of killed workers left
        return report


@dataclass
class _Job:
    job: object  # fleet_tasks.BagJob
    reason: str
    input_fingerprint: str = ''


class _FleetRun:
    """One run: the classification, the tasks in flight and the books."""

    def __init__(self, bags, out_dir: Path, config: EvsConfig, options: FleetOptions, log: Log):
        self.out_dir, self.options, self.log = out_dir, options, log
        config = fix_backend(config, options.weights_dir)
        self.config = replace(config, model=absolute_paths(config.model))
        self.weights_sha256 = checksum(Path(options.weights_dir)) if options.weights_dir else ''
        self.settings = label_settings(self.config, options.image_topic, options.storage,
                                       options.chunk_s, self.weights_sha256)
        self.settings_hash = config_hash(self.settings)
        self.manifest = Manifest(out_dir)
        for problem in self.manifest.problems:
            log(f'evs fleet: {problem}')
        self.bags = bags
        self.todo: List[_Job] = []
        self.current: List[str] = []
        self.labelled: Dict[str, dict] = {}
        self.failed: Dict[str, dict] = {}
        self.pending: Dict[object, tuple] = {}
        self.frames_total = 0
        self.started = time.monotonic()
        self.startup_s = 0.0
        self.cluster: dict = {}
        self.progress = None

    # ---- what to do -------------------------------------------------------------------------

    def classify(self) -> None:
        """Split the bags into current ones (skipped) and the ones to label, longest first."""
        from evs_ros.bags.fleet_tasks import BagJob
        for key, path in self.bags:
            output = self.out_dir / key
            reason = self.manifest.staleness(key, path, output, self.settings_hash,
                                             self.options.verify)
            if reason is None:
                self.current.append(key)
                continue
            frames, duration_s = self._expected(path)
            self.todo.append(_Job(BagJob(key, str(path), str(output), frames, duration_s),
                                  reason))
        self.todo.sort(key=lambda item: (-item.job.frames, item.job.key))
        self.frames_total = sum(item.job.frames for item in self.todo)

    def _expected(self, path: Path):
        try:
            info = bag_info(path)
        except BagError:
            return 0, 0.0
        return info.message_counts.get(self.options.image_topic, 0), info.duration_ns / 1e9

    # ---- the run ----------------------------------------------------------------------------

    def execute(self) -> dict:
        self.classify()
        self.log(f'evs fleet: {len(self.bags)} bag(s): {len(self.current)} up to date, '
                 f'{len(self.todo)} to label ({self.frames_total} frames); settings '
                 f'{self.settings_hash}')
        if not self.todo:
            return self._finish(interrupted=False)
        import ray
        started_ray = self._connect(ray)
        try:
            self._submit_all(ray)
            self._wait_all(ray)
        except KeyboardInterrupt:
            for ref in list(self.pending):
                ray.cancel(ref, force=True)
            self._finish(interrupted=True)
            raise
        finally:
            if self.progress is not None:
                ray.kill(self.progress)
            if started_ray:
                ray.shutdown()
        return self._finish(interrupted=False)

    def _connect(self, ray) -> bool:
        """Connect to (or start) Ray; True when this run started it."""
        started = not ray.is_initialized()
        dashboard_url = ''
        if started:
            context = self._init_ray(ray)
            dashboard_url = getattr(context, 'dashboard_url', '') or ''
        resources = ray.cluster_resources()
        nodes = [node for node in ray.nodes() if node.get('Alive')]
        self.cluster = {'address': self.options.address or 'local instance',
                        'nodes': len(nodes), 'cpus': resources.get('CPU', 0.0),
                        'gpus': resources.get('GPU', 0.0),
                        'dashboard': f'http://{dashboard_url}' if dashboard_url and
                        not dashboard_url.startswith('http') else dashboard_url}
        self.log(f"evs fleet: Ray {ray.__version__}, {self.cluster['nodes']} node(s), "
                 f"{self.cluster['cpus']:g} CPU(s), {self.cluster['gpus']:g} GPU(s)"
                 + (f"; dashboard {self.cluster['dashboard']}" if dashboard_url else ''))
        return started

    def _init_ray(self, ray):
        kwargs = dict(logging_level='WARNING', configure_logging=True)
        if not self.options.address:
            return ray.init(address='local', num_cpus=self.options.workers,
                            include_dashboard=self.options.dashboard, **kwargs)
        try:
            return ray.init(address=self.options.address, **kwargs)
        except Exception as error:  # noqa: B902 - Ray raises several kinds; one line for all
            raise FleetError(f'cannot join the Ray cluster at {self.options.address}: '
                             f'{one_line(error)}{_auth_hint(error)}') from None

    def _task_options(self, gpus: bool = True) -> dict:
        return dict(num_cpus=self.options.cpus_per_task,
                    num_gpus=self.options.gpus_per_task if gpus else 0,
                    max_retries=self.options.max_retries, retry_exceptions=False,
                    runtime_env={'env_vars': dict(OFFLINE_ENV)})

    def _submit_all(self, ray) -> None:
        from evs_ros.bags import fleet_tasks as tasks
        weights = None
        if self.options.weights_dir:
            weights = (self.weights_sha256, [ray.put(pack(Path(self.options.weights_dir)))])
        progress = tasks.Progress.remote()
        self.progress = progress
        self.task_settings = tasks.TaskSettings(
            config=self.config, image_topic=self.options.image_topic,
            storage=self.options.storage, chunk_s=self.options.chunk_s,
            settings_hash=self.settings_hash,
            parts_root=str(self.out_dir / STATE_DIR / 'parts'),
            summary_extra={'config_hash': self.settings_hash, 'settings': self.settings},
            weights=weights, progress=progress)
        self._preflight(ray, tasks)
        self.startup_s = time.monotonic() - self.started
        for item in self.todo:
            self._submit(ray, tasks, item)

    def _preflight(self, ray, tasks) -> None:
        """Load the network on one worker first: a missing network is one line, not N."""
        ref = tasks.preflight_task.options(**self._task_options()).remote(
            self.task_settings, self.todo[0].job.input, str(self.out_dir))
        try:
            result = ray.get(ref)
        except Exception as error:  # noqa: B902 - any failure of the probe stops the run
            raise FleetError(f'the workers cannot label: {error_line(error)}') from None
        self.cluster['network'] = result['network']
        self.log(f"evs fleet: network {result['network']} loaded on {result['worker']} in "
                 f"{result['load_s']:.1f} s")

    def _submit(self, ray, tasks, item: _Job) -> None:
        job = item.job
        try:
            info = bag_info(Path(job.input))
        except BagError as error:
            self._record_failure(item, error)
            return
        item.input_fingerprint = fingerprint(Path(job.input))
        chunked = self.options.chunk_s > 0 and info.duration_ns / 1e9 > self.options.chunk_s
        if chunked:
            ref = tasks.plan_task.options(**self._task_options(gpus=False)).remote(
                job, self.task_settings)
            self.pending[ref] = ('plan', item)
        else:
            ref = tasks.label_bag_task.options(**self._task_options()).remote(
                job, self.task_settings)
            self.pending[ref] = ('bag', item)

    def _submit_chunks(self, tasks, item: _Job, plan) -> None:
        if len(plan) == 1:
            ref = tasks.label_bag_task.options(**self._task_options()).remote(
                item.job, self.task_settings)
            self.pending[ref] = ('bag', item)
            return
        chunk_refs = [tasks.chunk_task.options(**self._task_options()).remote(
            item.job, self.task_settings, chunk, item.input_fingerprint) for chunk in plan]
        ref = tasks.merge_task.options(**self._task_options(gpus=False)).remote(
            item.job, self.task_settings, plan, item.input_fingerprint, *chunk_refs)
        self.pending[ref] = ('bag', item)

    def _wait_all(self, ray) -> None:
        from evs_ros.bags import fleet_tasks as tasks
        rates = deque(maxlen=64)
        last_log = last_save = time.monotonic()
        while self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            for ref in ready:
                kind, item = self.pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # noqa: B902 - a bag's failure is reported
                    self._record_failure(item, error)
                    continue
                if kind == 'plan':
                    self._submit_chunks(tasks, item, result)
                else:
                    self._record_done(item, result)
            now = time.monotonic()
            if now - last_log >= self.options.progress_period_s:
                self.log(self._progress_line(ray, rates, now))
                last_log = now
            if now - last_save >= self.options.manifest_period_s:
                self._save_manifest()
                last_save = now

    # ---- the books --------------------------------------------------------------------------

    def _record_done(self, item: _Job, entry: dict) -> None:
        self.labelled[item.job.key] = entry
        self.manifest.record(item.job.key, entry)

    def _record_failure(self, item: _Job, error: BaseException) -> None:
        job = item.job
        entry = {'status': FAILED, 'input': job.input, 'output': job.output,
                 'config_hash': self.settings_hash, 'error': error_line(error),
                 'finished': now_utc()}
        self.failed[job.key] = entry
        self.manifest.record(job.key, entry)
        self.log(f'evs fleet: FAILED {job.key}: {entry["error"]}')

    def _frames_done(self, ray) -> int:
        finished = sum(entry['frames'] for entry in self.labelled.values())
        try:
            in_flight = ray.get(self.progress.frames.remote(), timeout=2.0)
        except Exception:  # noqa: B902 - progress is best effort
            return finished
        done_keys = set(self.labelled) | set(self.failed)
        return finished + sum(frames for key, frames in in_flight.items()
                              if key.split('#', 1)[0] not in done_keys)

    def _progress_line(self, ray, rates, now: float) -> str:
        frames = self._frames_done(ray)
        rates.append((now, frames))
        window = [(t, f) for t, f in rates if now - t <= 30.0] or [rates[-1]]
        dt = window[-1][0] - window[0][0]
        rate = (window[-1][1] - window[0][1]) / dt if dt > 0 else \
            frames / max(now - self.started, 1e-9)
        remaining = max(self.frames_total - frames, 0)
        eta = format_duration(remaining / rate) if rate > 0 else '?'
        return (f'evs fleet: {len(self.labelled) + len(self.failed)}/{len(self.todo)} bags '
                f'({len(self.failed)} failed), {frames}/{self.frames_total} frames, '
                f'{rate:.1f} frames/s, ETA {eta}')

    def _save_manifest(self) -> None:
        self.manifest.save({'tool': 'evs fleet', 'config_hash': self.settings_hash,
                            'settings': self.settings, 'image_topic': self.options.image_topic})

    def _finish(self, interrupted: bool) -> dict:
        self._save_manifest()
        wall_s = time.monotonic() - self.started
        data = fleet_report.build(
            bags=[key for key, _ in self.bags], current=self.current, labelled=self.labelled,
            failed=self.failed, wall_s=wall_s, startup_s=self.startup_s, settings=self.settings,
            settings_hash=self.settings_hash, cluster=self.cluster,
            reasons={item.job.key: item.reason for item in self.todo}, interrupted=interrupted)
        fleet_report.write(self.out_dir, data)
        if len(data['networks']) > 1:
            self.log('evs fleet: WARNING: the workers loaded different networks '
                     f"({'; '.join(data['networks'])}): their caches differ; ship one with "
                     '--weights-dir')
        self.log(fleet_report.summary_line(data))
        return data


def error_line(error: BaseException) -> str:
    """One line for a failed task: the bag's own error, or how its worker died."""
    seen = 0
    while getattr(error, 'cause', None) is not None and seen < 8:  # RayTaskError -> its cause
        error, seen = error.cause, seen + 1
    name = type(error).__name__
    if name in ('WorkerCrashedError', 'NodeDiedError', 'OutOfMemoryError'):
        return f'{name}: its worker died on every try (killed, out of memory or lost node)'
    return f'{name}: {one_line(error)}'


def _auth_hint(error: BaseException) -> str:
    """Return a hint when Ray refused the connection for its token authentication."""
    seen = 0
    while error is not None and seen < 8:
        if 'auth' in f'{type(error).__name__} {error}'.lower():
            return (' (the cluster uses token authentication: set RAY_AUTH_MODE=token and give '
                    'this machine its token, ~/.ray/auth_token or RAY_AUTH_TOKEN)')
        error, seen = error.__cause__ or error.__context__, seen + 1
    return ''


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


def remove_leftovers(out_dir: Path) -> int:
    """Delete the temporary outputs (``*.evs-tmp-*``) that killed processes left under OUT."""
    removed = 0
    for folder, subfolders, files in os.walk(out_dir):
        for name in list(subfolders) + list(files):
            if name.startswith('.') and TEMP_MARK in name:
                path = Path(folder) / name
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                    subfolders.remove(name)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
    return removed


class OutLock:
    """An exclusive lock on OUT for the run (a second ``evs fleet`` on OUT is refused)."""

    def __init__(self, out_dir: Path):
        self._path = Path(out_dir) / STATE_DIR / 'lock'

    def __enter__(self):
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._path, 'a+')
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return self  # a file system without locks: run unguarded
            self._file.close()
            raise FleetError(f'another evs fleet is writing {self._path.parent.parent}; wait '
                             'for it or choose another OUT') from None
        return self

    def __exit__(self, *exc_info):
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
