"""Pretrained checkpoints by name: catalogue, cache locations, explicit download, resolution.

Design §6: nothing downloads implicitly. ``get_weights`` (the ``evs weights get`` command) is the
only function here that touches the network; ``resolve_weights`` (``weights:NAME`` backends) and
``cached_path`` only look at the caches and raise ``NotCachedError`` with what to run otherwise.

Where things live (the standard caches, so an offline robot gets them by copying folders):

- Hugging Face hub ids: the Hugging Face cache, ``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` (default
  ``~/.cache/huggingface/hub``; a transformers 4 ``$TRANSFORMERS_CACHE`` is read too), through
  ``huggingface_hub`` (``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are honoured); see
  :mod:`evs_ros.models.caches`. Only ``*.json`` (config, processor) and the weights
  (``*.safetensors``, else ``pytorch_model*.bin``) are fetched.
- Files (URLs): ``$XDG_CACHE_HOME/evs_ros/NAME/`` (default ``~/.cache/evs_ros``); a caffemodel is
  converted on arrival into an evs_ros checkpoint next to it (``STEM.pt``).

Pinning: a catalogue hub entry names the commit it was verified at (``revision``, 40 hex digits);
``evs weights get NAME`` fetches that commit and ``weights:NAME`` runs it. ``evs weights get NAME
--revision main`` opts out: ``weights:NAME`` then runs the cached ``main`` snapshot, with a warning
that it is not the verified commit (the same happens for a cache filled before the pin).

A NAME is an entry of the catalogue (``evs_ros/models/weights_catalogue.py`` plus the YAML/JSON
file named by ``EVS_WEIGHTS_CATALOGUE``) or a raw hub id ``org/model``.
"""

import logging
import os
import shutil
import sys
from dataclasses import fields, replace
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

from evs_ros.config import truth_value
from evs_ros.errors import one_line
from evs_ros.models.caches import (HUB_ID, evs_cache_dir, file_copy_hint, hf_cache_dir,
                                   hub_cache_dirs, hub_copy_hint, hub_repo_folder, is_hub_id)
from evs_ros.models.download import ChecksumError, DownloadError, OfflineError, download
from evs_ros.models.weights_catalogue import WeightsEntry, builtin_catalogue, is_pinned

__all__ = ['WeightsEntry', 'WeightsError', 'NotCachedError', 'OfflineError', 'ChecksumError',
           'load_catalogue', 'find_entry', 'cached_path', 'resolve_weights', 'expand_weights_spec',
           'get_weights', 'hub_snapshot', 'hub_patterns', 'evs_cache_dir', 'hf_cache_dir',
           'cache_location', 'not_cached_message', 'HUB_ID', 'cached_revision']

LOGGER = logging.getLogger('evs_ros')
CATALOGUE_ENV = 'EVS_WEIGHTS_CATALOGUE'
SPEC_PREFIX = 'weights:'
UNPINNED = 'main'
# One base class for every refusal here: a ValueError whose message names the fix.
WeightsError = DownloadError


class NotCachedError(WeightsError):
    """The checkpoint is not in the cache; the message says what to run and what to copy."""


def load_catalogue(path: str = '') -> Dict[str, WeightsEntry]:
    """Built-in entries, updated by the file ``path`` or ``$EVS_WEIGHTS_CATALOGUE`` (if set)."""
    catalogue = builtin_catalogue()
    path = path or os.environ.get(CATALOGUE_ENV, '')
    if path:
        catalogue.update(read_catalogue_file(path))
    return catalogue


def read_catalogue_file(path: str) -> Dict[str, WeightsEntry]:
    """YAML/JSON mapping NAME -> ``WeightsEntry`` fields -> entries; WeightsError if malformed."""
    import yaml
    try:
        with open(path) as stream:
            raw = yaml.safe_load(stream) or {}
    except (OSError, yaml.YAMLError) as error:
        raise WeightsError(f'{CATALOGUE_ENV}={path!r} is not a readable YAML file: {error}')
    if not isinstance(raw, dict):
        raise WeightsError(f'{path!r} must map NAME -> fields (kind, source, backend, ...)')
    known = {field.name for field in fields(WeightsEntry)} - {'name'}
    entries = {}
    for name, values in raw.items():
        unknown = sorted(set(values) - known) if isinstance(values, dict) else ['(not a mapping)']
        if unknown:
            raise WeightsError(f'{path!r}: entry {name!r} has unknown fields {unknown}; '
                               f'allowed: {sorted(known)}')
        try:
            entries[str(name)] = WeightsEntry(name=str(name), **values)
        except (TypeError, ValueError) as error:
            raise WeightsError(f'{path!r}: entry {name!r}: {error}') from error
    return entries


def find_entry(name: str, catalogue: Optional[Dict[str, WeightsEntry]] = None) -> WeightsEntry:
    """Return the catalogue entry ``name``, or an ad-hoc entry for a raw hub id ``org/model``."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    if name in catalogue:
        return catalogue[name]
    if '://' in name:
        raise WeightsError(f'{name!r} is a URL: give it a name, a backend and a checksum in a '
                           f'YAML file named by {CATALOGUE_ENV} (see `evs weights list -v`)')
    if is_hub_id(name):
        return WeightsEntry(name=name, kind='hub', source=name, backend='hf')
    raise WeightsError(f'unknown weights {name!r}: use a name from `evs weights list` '
                       f'({", ".join(sorted(catalogue))}) or a Hugging Face hub id org/model')


def file_paths(entry: WeightsEntry) -> Tuple[str, str]:
    """Return (downloaded file, converted checkpoint or '') of a ``file`` entry."""
    filename = entry.filename or os.path.basename(urlparse(entry.source).path) or entry.name
    path = os.path.join(evs_cache_dir(), entry.name, filename)
    return path, (os.path.splitext(path)[0] + '.pt' if entry.convert else '')


def cache_location(entry: WeightsEntry) -> str:
    """Return the folder that holds ``entry`` once fetched (what to copy to an offline machine)."""
    if entry.kind == 'hub':
        return hub_repo_folder(entry.source)
    return os.path.dirname(file_paths(entry)[0])


def _has_weights(directory: str) -> bool:
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return any(name.endswith('.safetensors') or
               (name.startswith('pytorch_model') and name.endswith('.bin')) for name in names)


def hub_snapshot(repo_id: str, revision: str = UNPINNED) -> Optional[str]:
    """Snapshot folder of a cached hub repo at ``revision`` with config and weights, else None.

    Looks in every hub cache (:func:`~evs_ros.models.caches.hub_cache_dirs`), no network.
    """
    from huggingface_hub import try_to_load_from_cache
    for cache in hub_cache_dirs():
        try:
            config = try_to_load_from_cache(repo_id, 'config.json', cache_dir=cache,
                                            revision=revision)
        except ValueError as error:  # huggingface_hub's id validation
            raise WeightsError(f'{repo_id!r} is not a valid hub id: {error}') from error
        if isinstance(config, str) and _has_weights(os.path.dirname(config)):
            return os.path.dirname(config)
    return None


def cached_revision(entry: WeightsEntry) -> Tuple[Optional[str], str]:
    """Return (cached snapshot folder or None, the revision it is) of a hub entry.

    The pinned commit, else (pinned entries only) a cached ``main`` snapshot (opted out, or fetched
    before the pin).
    """
    snapshot = hub_snapshot(entry.source, entry.revision)
    if snapshot or entry.revision == UNPINNED or not is_pinned(entry.revision):
        return snapshot, entry.revision
    return hub_snapshot(entry.source, UNPINNED), UNPINNED


def cached_path(entry: WeightsEntry) -> Optional[str]:
    """Where the cached checkpoint is (hub snapshot folder, converted .pt, or file), else None."""
    if entry.kind == 'hub':
        return cached_revision(entry)[0]
    path, converted = file_paths(entry)
    for candidate in (converted, path):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _fetch_hint(entry: WeightsEntry) -> str:
    fetch = f'evs weights get {entry.name}'
    if entry.kind == 'hub':
        return hub_copy_hint(entry.source, fetch)
    return file_copy_hint(cache_location(entry), fetch)


def not_cached_message(entry: WeightsEntry) -> str:
    """One line: what to run on a connected machine and what to copy for an offline robot."""
    return f'weights {entry.name!r} are not in the cache: {_fetch_hint(entry)}'


def resolve_weights(name: str, catalogue: Optional[Dict[str, WeightsEntry]] = None) -> str:
    """Backend SPEC of a cached checkpoint: ``hf:SNAPSHOT_DIR`` or ``icnet:PATH``; no network.

    Raises:
        NotCachedError: not fetched yet (the message names the command and the folder to copy).
        WeightsError: unknown name.
    """
    entry = find_entry(name, catalogue)
    path = cached_path(entry)
    if path is None:
        raise NotCachedError(not_cached_message(entry))
    if entry.kind == 'hub' and cached_revision(entry)[1] != entry.revision:
        LOGGER.warning('weights %s: running the cached %s snapshot %s, not the commit %s it was '
                       'verified at; `evs weights get %s` fetches that one', entry.name,
                       UNPINNED, os.path.basename(path), entry.revision, entry.name)
    return f'{entry.backend}:{path}'


def expand_weights_spec(spec: str) -> str:
    """``weights:NAME`` -> the resolved backend SPEC; any other SPEC is returned unchanged."""
    if not spec.startswith(SPEC_PREFIX):
        return spec
    return resolve_weights(spec[len(SPEC_PREFIX):])


def get_weights(name: str, catalogue: Optional[Dict[str, WeightsEntry]] = None,
                progress: bool = True, local_file: str = '', revision: str = '') -> str:
    """Fetch ``name`` into its cache (explicit user action) and return where it is.

    Args:
        name: catalogue name or hub id.
        catalogue: entries to use (default: ``load_catalogue()``).
        progress: progress bars on stderr.
        local_file: a copy of a ``file`` entry fetched by other means (e.g. a browser); it is
            verified and converted like a download.
        revision: hub entries: this branch, tag or commit instead of the pinned one (``main``
            opts out of the pin); '' = the catalogue's.

    Raises:
        OfflineError: no network / server down / ``HF_HUB_OFFLINE`` set (exit code 2 in the CLI).
        ChecksumError: the file is not the published one; nothing was kept.
        WeightsError: unknown name, HTTP error, an HTML page instead of the file, no weights.
    """
    entry = find_entry(name, catalogue)
    if revision and entry.kind != 'hub':
        raise WeightsError(f'{entry.name!r} is a file (checked by its checksum): --revision '
                           'applies to hub models only')
    if entry.kind == 'hub':
        entry = replace(entry, revision=revision) if revision else entry
        if local_file:
            raise WeightsError(f'{entry.name!r} is a hub model: copy its Hugging Face cache '
                               f'folder ({cache_location(entry)}) instead of --file')
        return _get_hub(entry)
    return _get_file(entry, progress, local_file)


def _get_file(entry: WeightsEntry, progress: bool, local_file: str) -> str:
    path, converted = file_paths(entry)
    if local_file:
        _import_local(entry, local_file, path)
    elif not os.path.isfile(path):  # present = verified when it arrived (renamed after checking)
        hint = (f'download it in a browser from {entry.page or entry.source} and run '
                f'`evs weights get {entry.name} --file PATH`')
        try:
            sha256 = download(entry.source, path, entry.sha256, entry.md5, progress, hint)
        except OfflineError as error:
            raise OfflineError(f'{error}; or {_fetch_hint(entry)}') from error
        if progress and not (entry.sha256 or entry.md5):
            print(f'evs weights: {entry.name!r} has no checksum in the catalogue; '
                  f'not verified (sha256 {sha256})', file=sys.stderr)
    if converted and not os.path.isfile(converted):
        CONVERTERS[entry.convert](path, converted)
    return converted or path


def _import_local(entry: WeightsEntry, local_file: str, path: str) -> None:
    from evs_ros.models.download import verify
    if not os.path.isfile(local_file):
        raise WeightsError(f'--file {local_file!r} does not exist')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part_path = f'{path}.part'
    shutil.copyfile(local_file, part_path)
    verify(part_path, entry.sha256, entry.md5, local_file)
    os.replace(part_path, path)
    converted = file_paths(entry)[1]
    if converted and os.path.isfile(converted):
        os.remove(converted)  # re-convert from the file just imported


def hub_patterns(filenames: List[str]) -> List[str]:
    """allow_patterns for a hub repo: configs plus safetensors, else pytorch_model*.bin.

    Never TensorFlow/Flax weights, never both formats (the nvidia SegFormer repos hold
    ``pytorch_model.bin`` and ``tf_model.h5`` on ``main``).
    """
    has_safetensors = any(name.endswith('.safetensors') for name in filenames)
    return ['*.json', '*.safetensors' if has_safetensors else 'pytorch_model*.bin']


def _get_hub(entry: WeightsEntry) -> str:
    cached = hub_snapshot(entry.source, entry.revision)
    if cached:
        return cached
    if truth_value(os.environ.get('HF_HUB_OFFLINE', '')):
        raise OfflineError(f'HF_HUB_OFFLINE is set and {entry.source} is not in the cache: unset '
                           f'it to download here, or {_fetch_hint(entry)}')
    snapshot = _download_hub(entry, os.environ.get('HF_ENDPOINT') or None)
    if is_pinned(entry.revision):
        _check_served_commit(entry)
    if not _has_weights(snapshot):
        raise WeightsError(f'{entry.source} has no *.safetensors or pytorch_model*.bin weights '
                           'for transformers (TensorFlow-only repos are not supported)')
    return snapshot


def _check_served_commit(entry: WeightsEntry) -> None:
    """Raise WeightsError unless the hub served the pinned commit itself.

    huggingface_hub files what it was served under the served commit and notes ``refs/<asked> ->
    served``; that note is removed so the other commit is never taken for the verified one.
    """
    alias = os.path.join(hub_repo_folder(entry.source, hf_cache_dir()), 'refs', entry.revision)
    if not os.path.isfile(alias):
        return
    with open(alias, encoding='utf-8') as stream:
        served = stream.read().strip()
    if served == entry.revision:
        return
    os.remove(alias)
    raise WeightsError(f'{entry.source}: asked for the verified commit {entry.revision}, the hub '
                       f'served {served}: not used (`--revision main` takes the newest files, '
                       'unverified)')


def _download_hub(entry: WeightsEntry, endpoint: Optional[str]) -> str:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (HTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    host = urlparse(endpoint or 'https://huggingface.co').netloc
    try:
        info = HfApi(endpoint=endpoint).model_info(entry.source, revision=entry.revision)
        patterns = hub_patterns([sibling.rfilename for sibling in info.siblings or ()])
        return snapshot_download(entry.source, revision=entry.revision, endpoint=endpoint,
                                 cache_dir=hf_cache_dir(), allow_patterns=patterns)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise WeightsError(f'{entry.source}@{entry.revision} is not on {host} (or needs a '
                           f'login): {one_line(error)}') from error
    except (HTTPError, OSError) as error:
        reason = one_line(error)
        raise OfflineError(f'cannot download {entry.source} from {host} ({reason}): this '
                           f'machine is offline or the hub is down; {_fetch_hint(entry)}'
                           ) from error


def convert_icnet_caffemodel(path: str, out_path: str) -> None:
    """Official ICNet caffemodel -> evs_ros ICNet checkpoint (the ``evs convert`` converter)."""
    from evs_ros.models.caffe import CaffeFormatError, convert_caffe
    try:
        convert_caffe(path, out_path)
    except CaffeFormatError as error:
        raise WeightsError(f'{path} arrived but does not convert: {error}') from error


CONVERTERS = {'icnet_caffe': convert_icnet_caffemodel}
