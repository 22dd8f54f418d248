"""``evs weights``: public pretrained checkpoints, fetched only by this command (design §6).

    evs weights list [-v | --json]       catalogue: backend, size, published accuracy, cached?
    evs weights get NAME [--file PATH]   download (progress, checksum, resume), convert, print path
    evs weights get NAME --revision main a hub model at another revision than its verified commit
    evs weights path NAME                where the cached checkpoint is (exit 1 if not cached)

NAME is a catalogue name or a Hugging Face hub id (org/model). Then run any backend as
``--backend weights:NAME`` (``model.backend: weights:NAME`` in the node). Offline robot: run
``get`` on a connected machine and copy the folders that ``list`` shows. Add entries (mirrors,
your own models) with a YAML file named by ``EVS_WEIGHTS_CATALOGUE``.
"""

import argparse
import json
import sys
from dataclasses import asdict

from evs_ros.models.weights_cache import (NotCachedError, WeightsError, cache_location,
                                          cached_path, cached_revision, evs_cache_dir,
                                          find_entry, get_weights, hf_cache_dir, load_catalogue,
                                          not_cached_message)
from evs_ros.models.weights_catalogue import is_pinned

ROW = '{:<31} {:<7} {:>8}  {:<28} {}'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='evs weights', description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n'.join(__doc__.splitlines()[1:]))
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    listing = sub.add_parser('list', help='the catalogue, with published size and accuracy')
    listing.add_argument('-v', '--verbose', action='store_true',
                         help='every field, with the source of each figure')
    listing.add_argument('--json', action='store_true', help='machine-readable list')
    get = sub.add_parser('get', help='download NAME into the standard cache and print where')
    get.add_argument('name', help='catalogue name or Hugging Face hub id org/model')
    get.add_argument('--file', default='', metavar='PATH',
                     help='use a copy fetched by other means (browser); verified like a download')
    get.add_argument('--quiet', action='store_true', help='no progress bar')
    get.add_argument('--revision', default='', metavar='REV',
                     help='hub models: this branch, tag or commit instead of the commit the '
                          'catalogue entry was verified at (main = the newest, unverified)')
    path = sub.add_parser('path', help='print where the cached checkpoint NAME is')
    path.add_argument('name', help='catalogue name or Hugging Face hub id org/model')
    return parser


def _size(entry) -> str:
    return f'{entry.size_mb:g} MB' if entry.size_mb else '?'


def _print_table(catalogue) -> None:
    print(ROW.format('NAME', 'BACKEND', 'SIZE', 'ACCURACY (Cityscapes val)', 'CACHED'))
    for entry in catalogue.values():
        cached = 'yes' if cached_path(entry) else 'no'
        print(ROW.format(entry.name, entry.backend, _size(entry), entry.accuracy or '-', cached))
    print(f'\nhub models are cached in {hf_cache_dir()}, files in {evs_cache_dir()}')
    print('published accuracy: measured at the training scale, with sliding windows where the '
          'authors used them and bilinear upsampling; evs_ros runs whole frames at that scale '
          '(`evs weights list -v`, docs/benchmarks.md section 14)')
    print('sources of the figures, checksums, licences: `evs weights list -v`; '
          'fetch one: `evs weights get NAME`')


def _print_details(entry) -> None:
    checksum = (f'sha256 {entry.sha256}' if entry.sha256 else
                f'md5 {entry.md5}' if entry.md5 else '(none: not verified)')
    lines = [('source', f'{entry.source} ({entry.kind})'), ('page', entry.page),
             ('backend', entry.backend), ('classes', entry.classes),
             ('size', f'{_size(entry)} ({entry.size_source or "source not recorded"})'),
             ('accuracy', f'{entry.accuracy or "not confirmed"}'
                          f'{" (" + entry.accuracy_source + ")" if entry.accuracy else ""}'),
             ('measured', entry.published_protocol() or 'not recorded'),
             ('we run', _how_we_run(entry)),
             ('checksum', checksum), ('licence', entry.license or 'not recorded here')]
    if entry.kind == 'hub':
        pin = 'verified commit' if is_pinned(entry.revision) else 'NOT PINNED'
        lines.append(('revision', f'{entry.revision} ({pin}; {entry.revision_note or "-"})'))
    lines.append(('cached', _cached_text(entry)))
    print(entry.name)
    for key, value in lines:
        print(f'  {key + ":":<10}{value}')


def _how_we_run(entry) -> str:
    """Return what the default settings do with ``entry`` (config.model defaults, D = 1)."""
    from evs_ros.config import ModelConfig
    model = ModelConfig()
    scale = (f'at short side {entry.trained_short_side} px' if entry.trained_short_side else
             "at the camera's size")
    return (f'the whole frame {scale} (model.input_short_side: 0; D scales from there), '
            f'{model.upsample} upsampling (model.upsample)')


def _cached_text(entry) -> str:
    path = cached_path(entry)
    if path is None:
        return f'no (would be in {cache_location(entry)})'
    if entry.kind == 'hub' and cached_revision(entry)[1] != entry.revision:
        return f'{path} (main, not the verified commit)'
    return path


def _list(args) -> int:
    catalogue = load_catalogue()
    if args.json:
        rows = [dict(asdict(entry), cached=cached_path(entry)) for entry in catalogue.values()]
        print(json.dumps(rows, indent=2))
    elif args.verbose:
        for entry in catalogue.values():
            _print_details(entry)
    else:
        _print_table(catalogue)
    return 0


def _get(args) -> int:
    path = get_weights(args.name, progress=not args.quiet, local_file=args.file,
                       revision=args.revision)
    entry = find_entry(args.name)
    print(f'{path}\nuse it as --backend weights:{entry.name} (resolves to {entry.backend}:{path})')
    return 0


def _path(args) -> int:
    entry = find_entry(args.name)
    path = cached_path(entry)
    if path is None:
        raise NotCachedError(not_cached_message(entry))
    print(path)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    command = {'list': _list, 'get': _get, 'path': _path}[args.command]
    try:
        return command(args)
    except NotCachedError as error:
        print(f'evs weights: {error}', file=sys.stderr)
        return 1
    except WeightsError as error:
        print(f'evs weights: error: {error}', file=sys.stderr)
        return 2
