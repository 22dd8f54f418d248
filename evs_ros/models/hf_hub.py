"""Where ``hf:MODEL`` lives on this machine: a local directory or the Hugging Face cache, offline.

Hub ids (``ORG/NAME``) resolve ONLY from the local Hugging Face cache (:func:`hf_cache_dir`), as
with ``HF_HUB_OFFLINE=1``: nothing here downloads. ``evs weights get ID`` fills the cache on a
connected machine; an offline robot gets a copy of the cache directory. No torch import.
"""

import os
import re

HUB_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$')


def hf_cache_dir() -> str:
    """Return the Hugging Face hub cache by huggingface_hub's rules, read from the environment.

    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.
    """
    cache = os.environ.get('HF_HUB_CACHE') or os.environ.get('HUGGINGFACE_HUB_CACHE')
    if not cache:
        xdg_cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
        home = os.environ.get('HF_HOME') or os.path.join(xdg_cache, 'huggingface')
        cache = os.path.join(home, 'hub')
    return os.path.expandvars(os.path.expanduser(cache))


def resolve_model_dir(model: str) -> str:
    """Return the local directory of ``hf:MODEL``: MODEL or the cached snapshot of a hub id.

    Raises:
        FileNotFoundError: no such directory, and not a cached hub id (the message says how to
            fill the cache).
        ValueError: MODEL is a file.
    """
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise ValueError(f'hf:{model} is a file: hf:MODEL needs a directory written by '
                         'save_pretrained (config.json + weights) or a Hugging Face hub id')
    if not HUB_ID.match(model):
        raise FileNotFoundError(f'hf:{model}: directory {path!r} does not exist (hf:MODEL is a '
                                'save_pretrained directory or a hub id like ORG/NAME)')
    return _cached_snapshot(model)


def _cached_snapshot(hub_id: str) -> str:
    from huggingface_hub import snapshot_download
    cache = hf_cache_dir()
    try:
        return snapshot_download(hub_id, cache_dir=cache, local_files_only=True)
    except Exception as error:  # LocalEntryNotFoundError, HFValidationError, OSError
        raise FileNotFoundError(
            f'hf:{hub_id}: no such directory and hub id {hub_id!r} is not in the Hugging Face '
            f'cache {cache}: run `evs weights get {hub_id}` on a connected machine, then copy '
            f'its cache directory to {cache} on this machine (or set HF_HOME to the copy)'
        ) from error
