"""Class lists of segmentation networks: Cityscapes trainId order, names, palettes.

A network's output channels follow its own class list (``id2label`` of a Hugging Face model, a
class-names file next to an ONNX/TorchScript file, ...). :func:`class_mapping` turns that list into
the channel order evs_ros publishes:

- **Cityscapes networks.** When the list holds the 19 Cityscapes train classes, each exactly once
  (any order, any letter case; ``'traffic_light'``, ``'Traffic-Light'`` and ``'traffic light'``
  are the same class: names are compared on lower-case letters and digits only), the output is
  re-ordered to Cityscapes trainIds, so the Cityscapes palette, the metrics and every consumer of
  the ``labels`` topic keep working. Classes beyond the 19 (``'unlabeled'``, ``'ego vehicle'``,
  ``'license plate'`` of a full labelId network, a ``'void'`` channel) are dropped and the 19
  probabilities renormalised to sum 1: this is how the official Cityscapes evaluation treats
  them (ignored), and it keeps the label range 0..18 that consumers rely on. The dropped names are
  kept in :attr:`ClassMapping.dropped` so callers can log them.
- **Other networks.** The network's own ids and names are kept; :func:`class_palette` gives a
  deterministic palette: Cityscapes colours for names that are Cityscapes classes, generated
  colours (:func:`generated_palette`) for the others.

Class-names files (``*.classes.txt``): UTF-8 text, one name per line, line i naming output
channel i; blank lines and lines starting with ``#`` are skipped (:func:`read_class_names`).

numpy only (plus the Cityscapes tables of :mod:`evs_ros.data.labels`).
"""

import os
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numpy as np

from evs_ros.data.labels import CLASS_NAMES, PALETTE_RGB, Visualizer

CLASSES_FILE_SUFFIX = '.classes.txt'
_GRID_LEVELS = 12  # per RGB channel: 1728 candidate colours for generated palettes


def class_key(name: str) -> str:
    """Comparison key of a class name.

    Lower-case letters and digits only ('Traffic_Light' -> 'trafficlight').
    """
    return re.sub(r'[^0-9a-z]', '', str(name).lower())


_CITYSCAPES_KEYS = {class_key(name): train_id for train_id, name in enumerate(CLASS_NAMES)}


def default_class_names(num_classes: int) -> Tuple[str, ...]:
    """Names for a network that publishes none: Cityscapes' 19 for 19 classes, else class_<i>."""
    if num_classes == len(CLASS_NAMES):
        return tuple(CLASS_NAMES)
    return tuple(f'class_{index}' for index in range(num_classes))


def cityscapes_source_index(names: Sequence[str]) -> Optional[np.ndarray]:
    """Where each Cityscapes trainId sits in ``names``.

    Returns:
        int64 (19,) array: entry t is the index in ``names`` of trainId t's class; None unless
        every Cityscapes class occurs exactly once in ``names`` (compared with :func:`class_key`).
    """
    positions = {}
    for index, name in enumerate(names):
        train_id = _CITYSCAPES_KEYS.get(class_key(name))
        if train_id is not None:
            if train_id in positions:
                return None
            positions[train_id] = index
    if len(positions) != len(CLASS_NAMES):
        return None
    return np.array([positions[train_id] for train_id in range(len(CLASS_NAMES))], np.int64)


@dataclass(frozen=True)
class ClassMapping:
    """From a network's output channels to the classes evs_ros publishes.

    Attributes:
        names: published class names; entry k names output channel k.
        source_index: int64 (len(names),): output channel k is network channel
            ``source_index[k]``; None = identity (the network's own order).
        dropped: network classes left out (Cityscapes networks with extra classes); when not
            empty, the kept probabilities are renormalised to sum 1.
    """

    names: Tuple[str, ...]
    source_index: Optional[np.ndarray] = None
    dropped: Tuple[str, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        """Number of published classes."""
        return len(self.names)

    @property
    def cityscapes(self) -> bool:
        """True when the published classes are the Cityscapes trainIds."""
        return tuple(self.names) == tuple(CLASS_NAMES)

    @property
    def is_identity(self) -> bool:
        """True when the network's channels are published as they are."""
        return self.source_index is None

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Re-order (and renormalise) probabilities.

        Args:
            probs: float32 (C_network, h, w) probabilities summing to 1 over C_network.

        Returns:
            float32 (len(names), h, w) probabilities summing to 1 over the published classes
            (``probs`` itself for the identity mapping).
        """
        if self.source_index is None:
            return probs
        mapped = np.take(probs, self.source_index, axis=0)
        if self.dropped:
            mapped /= np.maximum(mapped.sum(axis=0, keepdims=True), np.float32(1e-12))
        return mapped


def class_mapping(network_names: Optional[Sequence[str]], num_classes: int) -> ClassMapping:
    """Decide how a network's ``num_classes`` channels are published (see module docstring).

    Args:
        network_names: the network's class names in channel order, or None when it has none
            (then :func:`default_class_names`).
        num_classes: the network's number of output channels.

    Raises:
        ValueError: ``network_names`` does not have ``num_classes`` entries.
    """
    if network_names is None:
        return ClassMapping(default_class_names(num_classes))
    names = tuple(str(name) for name in network_names)
    if len(names) != num_classes:
        raise ValueError(f'{len(names)} class names for a network with {num_classes} output '
                         'classes: give exactly one name per output channel')
    source_index = cityscapes_source_index(names)
    if source_index is None:
        return ClassMapping(names)
    if len(names) == len(CLASS_NAMES) and np.array_equal(source_index, np.arange(len(names))):
        return ClassMapping(tuple(CLASS_NAMES))
    kept = set(source_index.tolist())
    dropped = tuple(name for index, name in enumerate(names) if index not in kept)
    return ClassMapping(tuple(CLASS_NAMES), source_index, dropped)


def generated_palette(num_classes: int, taken_rgb: Optional[np.ndarray] = None) -> np.ndarray:
    """Deterministic, well separated colours for ``num_classes`` classes.

    Farthest-point sampling over a 12-level RGB grid: each colour is the grid colour farthest
    (Euclidean, RGB) from black (ignored pixels) and from every colour chosen before it, ties to
    the first grid colour. The first colours are white and saturated primaries; 19 colours are at
    least 116 apart, 255 colours at least 33.

    Args:
        num_classes: colours to generate.
        taken_rgb: uint8 (K, 3) colours already in use, kept away from like black.

    Returns:
        uint8 (num_classes, 3) RGB colours.
    """
    levels = np.round(np.linspace(0.0, 255.0, _GRID_LEVELS))
    candidates = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
    taken = np.zeros((1, 3)) if taken_rgb is None else np.vstack(
        [np.zeros((1, 3)), np.asarray(taken_rgb, np.float64).reshape(-1, 3)])
    distance = np.min(np.linalg.norm(candidates[:, None] - taken[None], axis=2), axis=1)
    colors = np.zeros((max(0, num_classes), 3), np.uint8)
    for index in range(len(colors)):
        chosen = candidates[int(np.argmax(distance))]
        colors[index] = chosen
        distance = np.minimum(distance, np.linalg.norm(candidates - chosen, axis=1))
    return colors


def class_palette(names: Sequence[str]) -> np.ndarray:
    """Colours for published classes.

    The Cityscapes colour for a Cityscapes class (compared with :func:`class_key`), a generated
    colour (:func:`generated_palette`, kept away from those) for every other class, in order.

    Returns:
        uint8 (len(names), 3) RGB colours.
    """
    train_ids = [_CITYSCAPES_KEYS.get(class_key(name)) for name in names]
    colors = np.zeros((len(names), 3), np.uint8)
    known = [index for index, train_id in enumerate(train_ids) if train_id is not None]
    colors[known] = PALETTE_RGB[[train_ids[index] for index in known]]
    others = [index for index, train_id in enumerate(train_ids) if train_id is None]
    colors[others] = generated_palette(len(others), colors[known])
    return colors


def classes_file_for(model_path: str) -> str:
    """Return the class-names file of a model file: ``net.onnx`` -> ``net.classes.txt``."""
    return os.path.splitext(model_path)[0] + CLASSES_FILE_SUFFIX


def read_class_names(path: str) -> Tuple[str, ...]:
    """Read a ``*.classes.txt`` file (one name per line; blank and ``#`` lines skipped).

    Raises:
        ValueError: the file lists no class.
    """
    with open(path, 'r', encoding='utf-8') as stream:
        lines = [line.strip() for line in stream]
    names = tuple(line for line in lines if line and not line.startswith('#'))
    if not names:
        raise ValueError(f'class-names file {path!r} lists no class: write one name per line')
    return names


def sidecar_class_names(model_path: str) -> Optional[Tuple[str, ...]]:
    """Read the class-names file next to ``model_path`` (:func:`classes_file_for`).

    None when there is none.
    """
    path = classes_file_for(model_path)
    return read_class_names(path) if os.path.isfile(path) else None


def visualizer_for_model(config, model) -> Visualizer:
    """Return the :class:`~evs_ros.data.labels.Visualizer` of what ``model`` publishes.

    ``model.palette_file`` if set, else colours for the model's class names (Cityscapes colours
    for Cityscapes classes, generated otherwise).
    """
    if config.model.palette_file:
        return Visualizer.from_config(config)
    names = getattr(model, 'class_names', None) or default_class_names(model.num_classes)
    return Visualizer.from_palette(class_palette(names), config.publish.overlay_alpha, names)
