"""The final report of ``evs fleet``: ``OUT/fleet_report.json`` and ``OUT/fleet_report.md``.

Bags (labelled now, already current, failed), frames, keyframes, failures with their one line,
wall time, frames per second of the whole run and of each worker process (its frames over the
time its tasks ran), and the cluster it ran on.
"""

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

from evs_ros.bags.labelling import TEMP_MARK
from evs_ros.bags.manifest import now_utc

REPORT_JSON = 'fleet_report.json'
REPORT_MD = 'fleet_report.md'


def build(bags: List[str], current: List[str], labelled: Dict[str, dict],
          failed: Dict[str, dict], wall_s: float, settings: dict, settings_hash: str,
          cluster: dict, reasons: Dict[str, str], interrupted: bool, startup_s: float = 0.0
          ) -> dict:
    """Return the report as a JSON-ready dict.

    ``startup_s``: from the start to the first task (Ray started or joined, the network loaded
    once); the rest of ``wall_s`` is labelling.
    """
    frames = sum(entry['frames'] for entry in labelled.values())
    workers = per_worker(labelled)
    networks = sorted({name for entry in labelled.values() for name in entry.get('network', ())})
    return {
        'finished': now_utc(), 'interrupted': interrupted,
        'bags': {'total': len(bags), 'labelled': len(labelled), 'up_to_date': len(current),
                 'failed': len(failed),
                 'not_finished': len(reasons) - len(labelled) - len(failed)},
        'frames': frames,
        'keyframes': sum(entry['keyframes'] for entry in labelled.values()),
        'skipped_frames': sum(entry['skipped_frames'] for entry in labelled.values()),
        'chunks': sum(entry['chunks'] for entry in labelled.values()),
        'reused_chunks': sum(entry.get('reused_chunks', 0) for entry in labelled.values()),
        'wall_s': round(wall_s, 3), 'startup_s': round(startup_s, 3),
        'frames_per_s': round(frames / wall_s, 3) if wall_s > 0 else 0.0,
        'frames_per_s_after_startup': round(frames / (wall_s - startup_s), 3)
        if wall_s > startup_s else 0.0,
        'workers': workers,
        'frames_per_s_per_worker': round(
            sum(w['frames'] for w in workers) / sum(w['busy_s'] for w in workers), 3)
        if workers and sum(w['busy_s'] for w in workers) > 0 else 0.0,
        'networks': networks,
        'failures': [{'bag': key, 'error': entry['error']}
                     for key, entry in sorted(failed.items())],
        'labelled': {key: {'reason': reasons.get(key, ''), 'frames': entry['frames'],
                           'keyframes': entry['keyframes'], 'chunks': entry['chunks'],
                           'busy_s': entry['busy_s']} for key, entry in sorted(labelled.items())},
        'cluster': cluster, 'config_hash': settings_hash, 'settings': settings,
    }


def per_worker(labelled: Dict[str, dict]) -> List[dict]:
    """Frames, busy seconds and frames per second of every worker process of the run."""
    frames, busy = defaultdict(int), defaultdict(float)
    for entry in labelled.values():
        for worker in entry.get('workers', ()):
            frames[worker['worker']] += worker['frames']
            busy[worker['worker']] += worker['busy_s']
    return [{'worker': name, 'frames': frames[name], 'busy_s': round(busy[name], 3),
             'frames_per_s': round(frames[name] / busy[name], 3) if busy[name] > 0 else 0.0}
            for name in sorted(frames)]


def summary_line(report: dict) -> str:
    bags = report['bags']
    state = 'interrupted' if report['interrupted'] else 'done'
    return (f"evs fleet: {state}: {bags['labelled']} labelled, {bags['up_to_date']} up to date, "
            f"{bags['failed']} failed of {bags['total']} bag(s); {report['frames']} frames "
            f"({report['keyframes']} keyframes) in {report['wall_s']:.1f} s = "
            f"{report['frames_per_s']:.1f} frames/s ({report['frames_per_s_per_worker']:.1f} "
            'per worker)')


def markdown(report: dict) -> str:
    """Return the report as a markdown page."""
    bags, cluster = report['bags'], report['cluster']
    lines = ['# evs fleet report', '',
             f"{report['finished']}{' (interrupted)' if report['interrupted'] else ''}; "
             f"settings {report['config_hash']}, operating point "
             f"{report['settings']['operating_point']['name']}, network "
             f"{', '.join(report['networks']) or report['settings']['model']['backend']}.", '',
             '| bags | labelled | up to date | failed | frames | keyframes | chunks | wall s '
             '(start-up) | frames/s (after start-up) | frames/s per worker |',
             '|---|---|---|---|---|---|---|---|---|---|',
             f"| {bags['total']} | {bags['labelled']} | {bags['up_to_date']} | {bags['failed']} "
             f"| {report['frames']} | {report['keyframes']} | {report['chunks']} | "
             f"{report['wall_s']:.1f} ({report['startup_s']:.1f}) | "
             f"{report['frames_per_s']:.2f} ({report['frames_per_s_after_startup']:.2f}) | "
             f"{report['frames_per_s_per_worker']:.2f} |", '']
    if cluster:
        lines += [f"Cluster: {cluster.get('address')}, {cluster.get('nodes')} node(s), "
                  f"{cluster.get('cpus', 0):g} CPU(s), {cluster.get('gpus', 0):g} GPU(s).", '']
    if report['failures']:
        lines += ['## Failures', ''] + [f"- `{item['bag']}`: {item['error']}"
                                        for item in report['failures']] + ['']
    if report['workers']:
        lines += ['## Workers', '', '| worker | frames | busy s | frames/s |', '|---|---|---|---|']
        lines += [f"| {w['worker']} | {w['frames']} | {w['busy_s']:.1f} | "
                  f"{w['frames_per_s']:.2f} |" for w in report['workers']] + ['']
    if len(report['networks']) > 1:
        lines += ['**Warning**: the workers loaded different networks (their caches differ); '
                  'ship one with --weights-dir.', '']
    return '\n'.join(lines)


def write(out_dir: Path, report: dict) -> None:
    """Write both files (temporary names, then renamed)."""
    for name, text in ((REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + '\n'),
                       (REPORT_MD, markdown(report) + '\n')):
        path = Path(out_dir) / name
        temp = path.with_name(f'.{name}{TEMP_MARK}{os.getpid()}')
        temp.write_text(text, encoding='utf-8')
        os.replace(temp, path)
