"""Where ``hf:MODEL`` lives on this machine: a local directory or the Hugging Face cache, offline.

Hub ids (``ORG/NAME``) resolve ONLY from the local caches (:mod:`evs_ros.models.caches`: the
Hugging Face hub cache, then a transformers 4 ``TRANSFORMERS_CACHE``), as with
``HF_HUB_OFFLINE=1``: nothing here downloads. ``evs weights get ID`` fills the cache on a connected
machine; an offline robot gets a copy of the cache folder. No torch import.
"""

import logging
import os

from evs_ros.models.caches import (LEGACY_HUB_CACHE_ENV, hf_cache_dir, hub_cache_dirs,
                                   hub_copy_hint, is_hub_id)

LOGGER = logging.getLogger('evs_ros')


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
    if not is_hub_id(model):
        raise FileNotFoundError(f'hf:{model}: directory {path!r} does not exist (hf:MODEL is a '
                                'save_pretrained directory or a hub id like ORG/NAME)')
    return _cached_snapshot(model)


def _cached_snapshot(hub_id: str, revision: str = 'main') -> str:
    from huggingface_hub import snapshot_download
    for cache in hub_cache_dirs():
        try:
            snapshot = snapshot_download(hub_id, cache_dir=cache, revision=revision,
                                         local_files_only=True)
        except Exception:  # LocalEntryNotFoundError, HFValidationError, OSError: try the next
            continue
        if cache != hf_cache_dir():
            LOGGER.info("hf:%s found in %s=%s (transformers 4's cache)", hub_id,
                        LEGACY_HUB_CACHE_ENV, cache)
        return snapshot
    raise FileNotFoundError(
        f'hf:{hub_id}: no such directory and hub id {hub_id!r} is not in the Hugging Face '
        f'cache {hf_cache_dir()}: {hub_copy_hint(hub_id, f"evs weights get {hub_id}")}')
