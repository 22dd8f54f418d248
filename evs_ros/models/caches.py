"""Where checkpoints live on this machine.

The one place for cache folders, hub ids and the "copy it to an offline machine" hints. Read from
the environment at each call; no network, no torch, no huggingface_hub import.

- Hugging Face hub models (huggingface_hub's rules, which transformers 5 follows):
  ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
  ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``. A model is the folder
  ``models--ORG--NAME`` in it.
- ``TRANSFORMERS_CACHE``: transformers 4 downloaded into it (deprecated since 4.36, gone in 5);
  no huggingface_hub version reads it (checked: 2.4 does not). A hub model is looked up there too
  when the hub cache lacks it (same ``models--ORG--NAME`` layout); downloads go to the hub cache.
- evs_ros files (URL entries of the catalogue): ``$XDG_CACHE_HOME/evs_ros`` (default
  ``~/.cache/evs_ros``).
"""

import os
import re
from typing import List

HUB_ID = re.compile(r'^\b[\w.-]{1,96}\b/\b[\w.-]{1,96}\b$', re.ASCII)
"""``ORG/NAME`` as huggingface_hub's ``validate_repo_id`` accepts it (plus :func:`is_hub_id`'s
extra rules): ASCII letters, digits, ``_ . -``, not starting or ending with ``.`` or ``-``."""
LEGACY_HUB_CACHE_ENV = 'TRANSFORMERS_CACHE'


def is_hub_id(text: str) -> bool:
    """Return True for a valid ``ORG/NAME`` hub id.

    huggingface_hub's rules: no ``--`` or ``..``, no ``.git`` ending.
    """
    return (bool(HUB_ID.match(text)) and '--' not in text and '..' not in text
            and not text.endswith('.git'))


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def _xdg_cache_home() -> str:
    return _expand(os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache'))


def hf_cache_dir() -> str:
    """Return the Hugging Face hub cache (see the module docstring), read from the env now."""
    explicit = os.environ.get('HF_HUB_CACHE') or os.environ.get('HUGGINGFACE_HUB_CACHE')
    if explicit:
        return _expand(explicit)
    home = os.environ.get('HF_HOME') or os.path.join(_xdg_cache_home(), 'huggingface')
    return os.path.join(_expand(home), 'hub')


def legacy_hub_cache_dir() -> str:
    """``$TRANSFORMERS_CACHE`` when set and not the hub cache itself, else ''."""
    legacy = os.environ.get(LEGACY_HUB_CACHE_ENV, '')
    if not legacy:
        return ''
    legacy = _expand(legacy)
    return '' if os.path.abspath(legacy) == os.path.abspath(hf_cache_dir()) else legacy


def hub_cache_dirs() -> List[str]:
    """Where a hub model is looked up, in order: the hub cache, then ``TRANSFORMERS_CACHE``."""
    return [path for path in (hf_cache_dir(), legacy_hub_cache_dir()) if path]


def hub_repo_folder(hub_id: str, cache: str = '') -> str:
    """Return the folder ``models--ORG--NAME`` of ``hub_id`` in ``cache`` (default: hub cache)."""
    return os.path.join(cache or hf_cache_dir(), 'models--' + hub_id.replace('/', '--'))


def evs_cache_dir() -> str:
    """``$XDG_CACHE_HOME/evs_ros`` (default ``~/.cache/evs_ros``), read now."""
    return os.path.join(_xdg_cache_home(), 'evs_ros')


def hub_copy_hint(hub_id: str, fetch: str) -> str:
    """Return what to do on a connected machine and what to copy here, for a hub model.

    ``fetch`` is the command that fills the cache there (``evs weights get NAME``).
    """
    cache = hf_cache_dir()
    return (f'run `{fetch}` on a connected machine, then copy its folder '
            f'{hub_repo_folder(hub_id, cache)} to the same path here (or copy the whole hub '
            f'cache of that machine and point HF_HUB_CACHE at the copy, or HF_HOME at the '
            f'folder that holds the copied hub/ folder)')


def file_copy_hint(folder: str, fetch: str) -> str:
    """Return what to do on a connected machine and what to copy here, for an evs_ros file."""
    return (f'run `{fetch}` on a connected machine, then copy its folder {folder} to the same '
            f'path here (or copy its whole {os.path.basename(evs_cache_dir())}/ folder and point '
            'XDG_CACHE_HOME at the folder that holds the copy)')
