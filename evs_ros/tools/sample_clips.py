"""``python -m evs_ros.tools.sample_clips [--quiet]``: put bikes.mp4 into the cache (setup.sh).

The clip and where it comes from: :mod:`evs_ros.data.sample_clips`.
"""

import argparse

from evs_ros.data.sample_clips import ensure_bikes_clip


def main(argv=None) -> int:
    """Extract bikes.mp4 into the cache and print its path (unless ``--quiet``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    path = ensure_bikes_clip()
    if not args.quiet:
        print(path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
