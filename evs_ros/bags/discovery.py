"""Which bags ``evs fleet IN OUT`` labels, and where each output goes.

IN is a directory (every ROS 2 bag below it: a directory with ``metadata.yaml`` or storage
files; bags are not searched inside, hidden folders and OUT are skipped) or a text file listing
bag directories, one per line (``#`` comments; relative lines are relative to the file). Each
bag keeps its path relative to IN (for a list: relative to the deepest folder holding them all)
under OUT.
"""

import os
from pathlib import Path
from typing import List, Optional, Tuple

STORAGE_SUFFIXES = ('.db3', '.mcap')


def is_bag_dir(path: Path) -> bool:
    """Tell a bag: a folder with ``metadata.yaml`` or a storage file (metadata lost)."""
    path = Path(path)
    if (path / 'metadata.yaml').is_file():
        return True
    try:
        return any(entry.is_file() and entry.name.endswith(STORAGE_SUFFIXES)
                   for entry in os.scandir(path))
    except OSError:
        return False


def find_bags(source: Path, exclude: Optional[Path] = None) -> List[Tuple[str, Path]]:
    """``[(relative key, absolute bag path)]`` sorted by key; ValueError when there are none."""
    source = Path(source).absolute()
    if source.is_file():
        bags = _listed_bags(source)
    elif source.is_dir():
        bags = _bags_below(source, Path(exclude).absolute() if exclude else None)
    else:
        raise FileNotFoundError(f'IN {source} is neither a directory of bags nor a list file')
    if not bags:
        raise ValueError(f'no ROS 2 bags found in {source} (a bag is a directory with '
                         'metadata.yaml)')
    keys = [key for key, _ in bags]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f'{source}: several bags would be written to {duplicates[0]!r}')
    return sorted(bags)


def _bags_below(root: Path, exclude: Optional[Path]) -> List[Tuple[str, Path]]:
    if is_bag_dir(root):
        return [(root.name, root)]
    bags = []
    for folder, subfolders, _ in os.walk(root):
        keep = []
        for name in sorted(subfolders):
            path = Path(folder) / name
            if name.startswith('.') or (exclude is not None and path == exclude):
                continue
            if is_bag_dir(path):
                bags.append((path.relative_to(root).as_posix(), path))
            else:
                keep.append(name)
        subfolders[:] = keep
    return bags


def _listed_bags(list_file: Path) -> List[Tuple[str, Path]]:
    paths = []
    for line in list_file.read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            path = Path(os.path.expanduser(line))
            paths.append(path if path.is_absolute() else (list_file.parent / path))
    paths = [Path(os.path.normpath(path)) for path in paths]
    if not paths:
        return []
    common = Path(os.path.commonpath([str(path.parent) for path in paths]))
    return [(path.relative_to(common).as_posix(), path) for path in paths]
