"""``OUT/manifest.json`` of ``evs fleet``: what was labelled, from what, with which settings.

Every finished bag gets an entry: ``status`` (``done`` or ``failed`` with a one-line ``error``),
the SHA-256 checksums of the input and output bag directories, their *fingerprints* (file names,
sizes and modification times: a stat, no read) and the hash of the settings that change labels
(:func:`config_hash`). A rerun skips an entry that is ``done`` with the same settings hash, an
unchanged input fingerprint and an output that is still there with its recorded fingerprint;
everything else (new, failed, stale, missing) is labelled again. ``--verify`` compares
checksums instead of fingerprints.

Crash safety: each finished bag is appended to ``OUT/.evs-fleet/journal.jsonl`` (one JSON line,
flushed and fsynced) before the driver moves on; ``manifest.json`` is rewritten (temporary name +
rename) every few seconds and at the end, and then the journal is emptied. Loading reads the
manifest and replays the journal, so a driver killed at any point loses nothing it was told.
"""

import hashlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import evs_ros
from evs_ros.bags.labelling import TEMP_MARK
from evs_ros.config import EvsConfig

MANIFEST_FILE = 'manifest.json'
STATE_DIR = '.evs-fleet'
JOURNAL_FILE = 'journal.jsonl'
FORMAT_VERSION = 1
DONE, FAILED = 'done', 'failed'
_CHUNK = 1 << 20


def bag_files(bag_path: Path) -> List[Path]:
    """Return the regular files of a bag directory, sorted by relative name."""
    bag_path = Path(bag_path)
    return sorted((p for p in bag_path.rglob('*') if p.is_file()),
                  key=lambda p: p.relative_to(bag_path).as_posix())


def fingerprint(bag_path: Path) -> str:
    """SHA-256 of every file's relative name, size and modification time (stat only)."""
    digest = hashlib.sha256()
    for path in bag_files(bag_path):
        stat = path.stat()
        digest.update(f'{path.relative_to(bag_path).as_posix()}\0{stat.st_size}\0'
                      f'{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


def checksum(bag_path: Path) -> str:
    """SHA-256 over every file's relative name and content SHA-256 (reads the whole bag)."""
    digest = hashlib.sha256()
    for path in bag_files(bag_path):
        content = hashlib.sha256()
        with open(path, 'rb') as stream:
            for block in iter(lambda: stream.read(_CHUNK), b''):
                content.update(block)
        digest.update(f'{path.relative_to(bag_path).as_posix()}\0{content.hexdigest()}\n'
                      .encode())
    return digest.hexdigest()


def label_settings(config: EvsConfig, image_topic: str, storage: Optional[str],
                   chunk_s: float, weights_sha256: str = '') -> dict:
    """Return the settings that decide an output bag, JSON-ready.

    The operating point, flow, IAM and the whole ``model`` section (network, engine, Refiner,
    device, palette), the image topic, the output storage, the evs_ros version and, when a
    ``--weights-dir`` is shipped, its checksum. The chunk length only changes labels under the
    adaptive policy (see :mod:`evs_ros.bags.chunks`), so it is part of the settings only there.
    """
    settings = {name: asdict(getattr(config, name))
                for name in ('operating_point', 'flow', 'iam', 'model')}
    settings.update(image_topic=image_topic, storage=storage or 'same as input',
                    evs_ros=evs_ros.__version__)
    if config.operating_point.adaptive:
        settings['chunk_s'] = float(chunk_s)
    if weights_sha256:
        settings['weights_dir_sha256'] = weights_sha256
    return settings


def config_hash(settings: dict) -> str:
    """Short SHA-256 of the canonical JSON of :func:`label_settings`."""
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


class Manifest:
    """The entries of ``OUT/manifest.json`` plus its journal, keyed by the bag's relative path."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_FILE
        self.journal_path = self.out_dir / STATE_DIR / JOURNAL_FILE
        self.entries: Dict[str, dict] = {}
        self.header: dict = {}
        self.problems: List[str] = []
        """what could not be read back (a damaged manifest: its bags are labelled again)"""
        self._load()

    def _load(self) -> None:
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding='utf-8'))
                self.entries = dict(data.get('bags') or {})
                self.header = {k: v for k, v in data.items() if k != 'bags'}
            except (OSError, ValueError, AttributeError) as error:
                self.problems.append(f'{self.path} is unreadable ({error}): every bag is '
                                     'labelled again')
        for line in self._journal_lines():
            self.entries[line['bag']] = line['entry']

    def _journal_lines(self) -> Iterable[dict]:
        try:
            with open(self.journal_path, encoding='utf-8') as stream:
                for line in stream:
                    try:
                        record = json.loads(line)
                    except ValueError:  # the last line of a killed driver
                        continue
                    if isinstance(record, dict) and 'bag' in record and 'entry' in record:
                        yield record
        except OSError:
            return

    def record(self, bag: str, entry: dict) -> None:
        """Keep ``entry`` for ``bag`` and append it to the journal (flushed to disk)."""
        self.entries[bag] = entry
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.journal_path, 'a', encoding='utf-8') as stream:
            stream.write(json.dumps({'bag': bag, 'entry': entry}, sort_keys=True) + '\n')
            stream.flush()
            os.fsync(stream.fileno())

    def save(self, header: dict) -> None:
        """Rewrite ``manifest.json`` atomically with ``header`` and every entry.

        Then empty the journal.
        """
        self.header = dict(header, format=FORMAT_VERSION, updated=now_utc())
        data = dict(self.header, bags={k: self.entries[k] for k in sorted(self.entries)})
        self.out_dir.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f'.{self.path.name}{TEMP_MARK}{os.getpid()}')
        with open(temp, 'w', encoding='utf-8') as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write('\n')
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, self.path)
        if self.journal_path.exists():
            self.journal_path.unlink()

    def staleness(self, bag: str, input_path: Path, output_path: Path, settings_hash: str,
                  verify: bool = False) -> Optional[str]:
        """Why ``bag`` must be labelled (again), or None when its output is current.

        ``verify``: compare checksums (reads both bags) instead of fingerprints.
        """
        entry = self.entries.get(bag)
        if entry is None:
            return 'new'
        if entry.get('status') != DONE:
            return 'failed before'
        if entry.get('config_hash') != settings_hash:
            return 'settings changed'
        if not Path(output_path).is_dir():
            return 'output missing'
        checks: Tuple[Tuple[str, Path], ...] = (('input', Path(input_path)),
                                                ('output', Path(output_path)))
        for name, path in checks:
            if verify:
                if checksum(path) != entry.get(f'{name}_sha256'):
                    return f'{name} checksum differs'
            elif fingerprint(path) != entry.get(f'{name}_fingerprint'):
                return f'{name} changed'
        return None
