"""The books of evs fleet without Ray.

Manifest (checksums, settings hash, what a rerun skips, the journal of a killed driver), discovery
of IN, the shipped weights folder, leftovers.
"""

import io
import json
import os
import shutil
import tarfile
from dataclasses import replace

import pytest

from bag_helpers import write_input_bag
from evs_ros.bags import report as fleet_report
from evs_ros.bags.discovery import find_bags
from evs_ros.bags.fleet import (
    FleetError, FleetOptions, OutLock, error_line, format_duration, remove_leftovers, run_fleet)
from evs_ros.bags.labelling import temp_path, write_atomically
from evs_ros.bags.manifest import (
    DONE, FAILED, Manifest, checksum, config_hash, fingerprint, label_settings)
from evs_ros.bags.network import fix_backend
from evs_ros.bags.weights_dir import absolute_paths, materialize, pack, use_weights_dir
from evs_ros.config import EvsConfig, ModelConfig, operating_point
from evs_ros.models.backends import DEFAULT_ICNET
from evs_ros.models.loading import load_models


def settings_hash(preset='EVS05', chunk_s=60.0, **model):
    config = EvsConfig(operating_point=operating_point(preset),
                       model=replace(ModelConfig(), **model))
    return config_hash(label_settings(config, '/camera/image', None, chunk_s))


def test_settings_hash_follows_what_changes_labels():
    base = settings_hash()
    assert settings_hash() == base
    assert settings_hash('EVS07') != base
    assert settings_hash(backend='icnet:/other.pt') != base
    assert settings_hash(refiner='') != base
    assert settings_hash(chunk_s=10.0) == base  # fixed S: chunks never change labels
    assert settings_hash('ADAPTIVE', 10.0) != settings_hash('ADAPTIVE', 60.0)
    config = EvsConfig()
    assert config_hash(label_settings(config, '/camera/image', 'mcap', 60.0)) != base
    assert config_hash(label_settings(config, '/front/image', None, 60.0)) != base
    threads = replace(config, runtime=replace(config.runtime, flow_threads=2))
    assert config_hash(label_settings(threads, '/camera/image', None, 60.0)) == base


def test_checksum_reads_content_and_fingerprint_only_stats(tmp_path):
    write_input_bag(tmp_path / 'bag', frames=3)
    digest, stamp = checksum(tmp_path / 'bag'), fingerprint(tmp_path / 'bag')
    copy = tmp_path / 'copy'
    shutil.copytree(tmp_path / 'bag', copy)
    assert checksum(copy) == digest  # same content anywhere
    db3 = next((tmp_path / 'bag').glob('*.db3'))
    os.utime(db3, ns=(1, 1))
    assert checksum(tmp_path / 'bag') == digest and fingerprint(tmp_path / 'bag') != stamp
    with open(db3, 'r+b') as stream:
        stream.seek(100)
        stream.write(b'X')
    assert checksum(tmp_path / 'bag') != digest


def done_entry(input_path, output_path, digest):
    return {'status': DONE, 'config_hash': digest,
            'input_sha256': checksum(input_path), 'input_fingerprint': fingerprint(input_path),
            'output_sha256': checksum(output_path), 'output_fingerprint': fingerprint(output_path),
            'frames': 3}


def test_staleness_new_failed_settings_input_output(tmp_path):
    bag_in, bag_out = tmp_path / 'in', tmp_path / 'out' / 'bag'
    write_input_bag(bag_in, frames=3)
    write_input_bag(bag_out, frames=3, storage='mcap')
    manifest = Manifest(tmp_path / 'out')
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') == 'new'
    manifest.record('bag', {'status': FAILED, 'config_hash': 'h1', 'error': 'x'})
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') == 'failed before'
    manifest.record('bag', done_entry(bag_in, bag_out, 'h1'))
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') is None
    assert manifest.staleness('bag', bag_in, bag_out, 'h1', verify=True) is None
    assert manifest.staleness('bag', bag_in, bag_out, 'h2') == 'settings changed'
    os.utime(next(bag_out.glob('*.mcap')), ns=(5, 5))
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') == 'output changed'
    assert manifest.staleness('bag', bag_in, bag_out, 'h1', verify=True) is None
    os.utime(next(bag_in.glob('*.db3')), ns=(5, 5))
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') == 'input changed'
    shutil.rmtree(bag_out)
    assert manifest.staleness('bag', bag_in, bag_out, 'h1') == 'output missing'


def test_journal_survives_a_killed_driver_and_save_compacts_it(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.record('a', {'status': DONE, 'frames': 1})
    manifest.save({'tool': 'evs fleet'})
    manifest.record('b', {'status': DONE, 'frames': 2})
    manifest.record('a', {'status': FAILED, 'error': 'later'})
    with open(manifest.journal_path, 'a') as stream:
        stream.write('{"bag": "c", "entry": {"sta')  # the driver died mid-line
    again = Manifest(tmp_path)
    assert again.entries == {'a': {'status': FAILED, 'error': 'later'},
                             'b': {'status': DONE, 'frames': 2}}
    again.save({'tool': 'evs fleet'})
    assert not again.journal_path.exists()
    data = json.loads((tmp_path / 'manifest.json').read_text())
    assert sorted(data['bags']) == ['a', 'b'] and data['format'] == 1


def test_a_damaged_manifest_is_reported_and_everything_relabelled(tmp_path):
    (tmp_path / 'manifest.json').write_text('{not json')
    manifest = Manifest(tmp_path)
    assert manifest.entries == {} and 'unreadable' in manifest.problems[0]


def test_discovery_of_a_directory_and_a_list_file(tmp_path):
    for name in ('a', 'drive/b', 'drive/deeper/c'):
        write_input_bag(tmp_path / 'in' / name, frames=1)
    (tmp_path / 'in' / 'lost').mkdir()  # storage file without metadata: a bag to report
    (tmp_path / 'in' / 'lost' / 'x_0.db3').write_bytes(b'')
    (tmp_path / 'in' / 'empty').mkdir()
    write_input_bag(tmp_path / 'in' / '.hidden', frames=1)
    write_input_bag(tmp_path / 'in' / 'out' / 'a', frames=1)  # OUT inside IN is skipped
    bags = find_bags(tmp_path / 'in', exclude=tmp_path / 'in' / 'out')
    assert [key for key, _ in bags] == ['a', 'drive/b', 'drive/deeper/c', 'lost']
    assert all(path.is_absolute() for _, path in bags)
    assert find_bags(tmp_path / 'in' / 'a') == [('a', tmp_path / 'in' / 'a')]
    listing = tmp_path / 'list.txt'
    listing.write_text(f'# my bags\nin/drive/b\n{tmp_path}/in/drive/deeper/c  # abs\n\n')
    assert find_bags(listing) == [('b', tmp_path / 'in' / 'drive' / 'b'),
                                  ('deeper/c', tmp_path / 'in' / 'drive' / 'deeper' / 'c')]
    with pytest.raises(ValueError, match='no ROS 2 bags'):
        find_bags(tmp_path / 'in' / 'empty')
    with pytest.raises(FileNotFoundError):
        find_bags(tmp_path / 'nothing')
    listing.write_text('in/a\nin/drive/../a\n')
    with pytest.raises(ValueError, match='several bags'):
        find_bags(listing)


def test_weights_folder_is_packed_unpacked_once_and_used(tmp_path):
    source = tmp_path / 'weights'
    (source / 'evs_ros' / 'tiny').mkdir(parents=True)
    shutil.copy(DEFAULT_ICNET, source / 'evs_ros' / 'tiny' / 'icnet.pt')
    (source / 'huggingface' / 'hub').mkdir(parents=True)
    archive, digest = pack(source), checksum(source)
    calls = []

    def fetch():
        calls.append(1)
        return archive

    root = materialize(fetch, digest, tmp_path / 'node')
    assert materialize(fetch, digest, tmp_path / 'node') == root and calls == [1]
    assert checksum(root) == digest
    saved = {k: os.environ.get(k) for k in ('XDG_CACHE_HOME', 'HF_HOME')}
    try:
        model_config = use_weights_dir(root, ModelConfig(backend='icnet:evs_ros/tiny/icnet.pt',
                                                         refiner='', device='cpu'))
        assert model_config.backend == f'icnet:{root}/evs_ros/tiny/icnet.pt'
        assert os.environ['XDG_CACHE_HOME'] == str(root)
        assert os.environ['HF_HOME'] == str(root / 'huggingface')
        model, refiner = load_models(model_config)
        assert model.num_classes == 19 and refiner is None
    finally:
        for key, value in saved.items():
            os.environ[key] = value


def test_weights_archive_with_unsafe_members_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w') as archive:
        info = tarfile.TarInfo('../escape')
        archive.addfile(info, io.BytesIO(b''))
    with pytest.raises(ValueError, match='not a plain file'):
        materialize(lambda: buffer.getvalue(), 'x', tmp_path)
    assert not (tmp_path / 'x').exists() and not (tmp_path.parent / 'escape').exists()


def test_relative_model_paths_become_absolute_only_when_they_exist(tmp_path):
    (tmp_path / 'net.onnx').write_bytes(b'')
    (tmp_path / 'ref.pt').write_bytes(b'')
    config = absolute_paths(ModelConfig(backend='onnx:net.onnx', refiner='ref.pt'), tmp_path)
    assert (config.backend, config.refiner) == (f'onnx:{tmp_path}/net.onnx',
                                                str(tmp_path / 'ref.pt'))
    for spec in ('icnet:default', 'python:fake_models:make_model', 'weights:net.onnx',
                 'hf:org/model'):
        assert absolute_paths(ModelConfig(backend=spec), tmp_path).backend == spec


def test_atomic_write_leaves_nothing_on_failure_and_leftovers_are_removed(tmp_path):
    final = tmp_path / 'out' / 'bag'

    def failing(temp):
        write_input_bag(temp, frames=1)
        raise RuntimeError('killed')

    with pytest.raises(RuntimeError):
        write_atomically(final, failing)
    assert list((tmp_path / 'out').iterdir()) == []
    leftover = temp_path(final)
    write_input_bag(leftover, frames=1)  # what a SIGKILLed worker leaves behind
    (tmp_path / 'out' / 'keep').mkdir()
    assert remove_leftovers(tmp_path / 'out') == 1
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['keep']


def test_error_lines_and_durations():
    class Wrapped(Exception):
        def __init__(self, cause):
            super().__init__('wrapper\nwith traceback')
            self.cause = cause

    assert error_line(Wrapped(ValueError('bad bag\ndetails'))) == 'ValueError: bad bag'
    crashed = type('WorkerCrashedError', (Exception,), {})()
    assert 'died on every try' in error_line(Wrapped(crashed))
    assert format_duration(59.6) == '1m00s' and format_duration(3725) == '1h02m'


def test_report_counts_and_per_worker_rates(tmp_path):
    labelled = {'a': {'frames': 10, 'keyframes': 4, 'skipped_frames': 0, 'chunks': 1,
                      'busy_s': 2.0, 'network': ['icnet:default'],
                      'workers': [{'worker': 'h/1', 'frames': 10, 'busy_s': 2.0}]},
                'b': {'frames': 30, 'keyframes': 10, 'skipped_frames': 1, 'chunks': 2,
                      'busy_s': 4.0, 'network': ['icnet:default'], 'reused_chunks': 1,
                      'workers': [{'worker': 'h/1', 'frames': 20, 'busy_s': 2.0},
                                  {'worker': 'h/2', 'frames': 10, 'busy_s': 2.0}]}}
    failed = {'c': {'error': 'BagError: broken'}}
    data = fleet_report.build(['a', 'b', 'c', 'd'], ['d'], labelled, failed, 8.0,
                              label_settings(EvsConfig(), '/camera/image', None, 60.0), 'h',
                              {'nodes': 1}, {'a': 'new', 'b': 'new', 'c': 'new'}, False)
    assert data['bags'] == {'total': 4, 'labelled': 2, 'up_to_date': 1, 'failed': 1,
                            'not_finished': 0}
    assert (data['frames'], data['keyframes'], data['frames_per_s']) == (40, 14, 5.0)
    assert [w['frames_per_s'] for w in data['workers']] == [7.5, 5.0]
    assert data['frames_per_s_per_worker'] == pytest.approx(40 / 6.0, abs=1e-3)
    fleet_report.write(tmp_path, data)
    text = (tmp_path / 'fleet_report.md').read_text()
    assert '- `c`: BagError: broken' in text and '| h/2 | 10 |' in text
    assert json.loads((tmp_path / 'fleet_report.json').read_text())['reused_chunks'] == 1


def test_auto_is_resolved_once_against_the_caches_or_a_weights_folder(tmp_path):
    config = EvsConfig()
    assert config.model.backend == 'auto'
    assert fix_backend(config).model.backend == 'icnet:default'  # empty test caches
    cached = tmp_path / 'evs_ros' / 'espnetv2-s2-cityscapes'
    cached.mkdir(parents=True)
    (cached / 'espnetv2_s_2.0_city_1024x512.pth').write_bytes(b'')
    before = dict(os.environ)
    fixed = fix_backend(config, str(tmp_path))
    assert fixed.model.backend == 'weights:espnetv2-s2-cityscapes'
    assert dict(os.environ) == before  # the driver's own caches are left as they were
    explicit = replace(config, model=replace(config.model, backend='icnet:default'))
    assert fix_backend(explicit, str(tmp_path)) is explicit


def test_a_second_fleet_on_the_same_out_is_refused(tmp_path):
    write_input_bag(tmp_path / 'in' / 'a', frames=1)
    with OutLock(tmp_path / 'out'):
        with pytest.raises(FleetError, match='another evs fleet is writing'):
            run_fleet(tmp_path / 'in', tmp_path / 'out', EvsConfig(), FleetOptions(),
                      lambda line: None)
