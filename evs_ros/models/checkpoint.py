"""evs_ros network checkpoints: one ``torch.save`` dict per network (ICNet, Refiner).

Format (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {'format': 'evs_ros.checkpoint', 'version': 1,
     'arch': 'icnet' | 'refiner',
     'config': {'num_classes': 19, 'width_mult': 1.0, ...},   # constructor kwargs
     'state_dict': {...},                                     # tensors
     'class_names': ['road', ...],
     'meta': {...}}                                           # free-form: source, epochs, mIoU
"""

import os
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from evs_ros.data.classes import default_class_names

FORMAT = 'evs_ros.checkpoint'
VERSION = 1
ARCHS = ('icnet', 'refiner')


def save_checkpoint(path: str, arch: str, config: Dict[str, Any], network: nn.Module,
                    class_names: Optional[Sequence[str]] = None,
                    meta: Optional[Dict[str, Any]] = None) -> None:
    """Write ``network``'s weights and the kwargs that rebuild it (atomic: tmp file + rename)."""
    if arch not in ARCHS:
        raise ValueError(f'arch={arch!r}; expected one of {ARCHS}')
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    names = list(class_names if class_names is not None
                 else default_class_names(int(config.get('num_classes', 19))))
    checkpoint = {'format': FORMAT, 'version': VERSION, 'arch': arch, 'config': dict(config),
                  'state_dict': state, 'class_names': names, 'meta': dict(meta or {})}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp_path = f'{path}.tmp'
    torch.save(checkpoint, tmp_path)
    os.replace(tmp_path, path)


def load_checkpoint(path: str, expected_arch: Optional[str] = None) -> Dict[str, Any]:
    """Read and validate a checkpoint dict (on CPU); ValueError that says what is wrong."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise ValueError(f'{path!r} is not a readable torch checkpoint: {error}') from error
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != FORMAT:
        raise ValueError(f'{path!r} is not an evs_ros checkpoint (missing format={FORMAT!r}); '
                         'convert Caffe weights with `evs convert caffe`')
    for key in ('arch', 'config', 'state_dict'):
        if key not in checkpoint:
            raise ValueError(f'checkpoint {path!r} lacks {key!r}')
    if expected_arch is not None and checkpoint['arch'] != expected_arch:
        raise ValueError(f'{path!r} holds a {checkpoint["arch"]!r} network, '
                         f'expected {expected_arch!r}')
    return checkpoint


def build_network(checkpoint: Dict[str, Any]) -> nn.Module:
    """Rebuild the network of a loaded checkpoint and load its weights (strict)."""
    arch, config = checkpoint['arch'], checkpoint['config']
    if arch == 'icnet':
        from evs_ros.models.icnet import ICNet
        network = ICNet(**config)
    elif arch == 'refiner':
        from evs_ros.models.refiner import RefinerNet
        network = RefinerNet(**config)
    else:
        raise ValueError(f'unknown arch {arch!r}; expected one of {ARCHS}')
    try:
        network.load_state_dict(checkpoint['state_dict'], strict=True)
    except RuntimeError as error:
        raise ValueError(f'checkpoint weights do not fit {arch} {config}: {error}') from error
    return network.eval()


def strip_for_release(path: str, out_path: str, half: bool = True) -> Dict[str, Any]:
    """Write a deployable copy: weights only (no optimizer state), float tensors in fp16.

    Loading casts the weights back to the network's dtype, so a stripped checkpoint runs like
    the original (fp16 rounding: ~1e-3 relative). Returns the written checkpoint's ``meta``.
    """
    checkpoint = load_checkpoint(path)
    meta = {k: v for k, v in checkpoint['meta'].items() if k != 'optimizer'}
    meta['stripped_from'] = os.path.basename(path)
    state = checkpoint['state_dict']
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    checkpoint.update(state_dict=state, meta=meta)
    tmp_path = f'{out_path}.tmp'
    torch.save(checkpoint, tmp_path)
    os.replace(tmp_path, out_path)
    return meta
