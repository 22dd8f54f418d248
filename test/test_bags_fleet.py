"""`evs fleet` on a local Ray cluster (2 CPUs, started once for this file).

A handful of small bags written here, outputs compared with single-process `evs bag` on the same
inputs; a corrupt bag, a worker killed mid-bag, a driver killed mid-run and reruns.
"""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from bag_helpers import moving_frame, raw_messages, write_input_bag
from conftest import TEST_DIR
from real_data import real_path, requires_real
from evs_ros.bags.labelling import SUMMARY_FILE, TEMP_MARK
from evs_ros.bags.manifest import checksum
from evs_ros.tools import cli

# scripts/setup.sh installs Ray (requirements-fleet.txt) unless EVS_FLEET=0: only then may the
# tests of this file be skipped.
ray = pytest.importorskip('ray') if os.environ.get('EVS_FLEET') == '0' else \
    importlib.import_module('ray')

FAST = ['--backend', 'python:fake_models:make_model', '--refiner', '', '--device', 'cpu',
        '--operating-point', 'EVS05']
PROBE = ['--backend', 'python:fleet_models:make_probe_model', '--refiner', '', '--device',
         'cpu', '--operating-point', 'EVS05']


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """Yield a local Ray instance with 2 CPUs whose workers import the test models.

    Yields (GCS address, probe folder).
    """
    probe_dir = tmp_path_factory.mktemp('probe')
    saved = {name: os.environ.get(name) for name in ('PYTHONPATH', 'EVS_TEST_PROBE_DIR')}
    os.environ['PYTHONPATH'] = TEST_DIR + os.pathsep + os.environ.get('PYTHONPATH', '')
    os.environ['EVS_TEST_PROBE_DIR'] = str(probe_dir)
    temp_dir = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short: Ray's socket paths
    cwd = os.getcwd()
    os.chdir(temp_dir)  # workers put the driver's directory on sys.path: not the source tree
    try:
        ray.init(address='local', num_cpus=2, include_dashboard=False,
                 object_store_memory=100 * 2**20, _temp_dir=temp_dir, logging_level='WARNING')
    finally:
        os.chdir(cwd)
    yield ray.get_runtime_context().gcs_address, probe_dir
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def evs(*argv):
    return cli.main([str(a) for a in argv])


def reference_bags(tmp_path, names, options=FAST):
    """Single-process `evs bag` of each input (the outputs the fleet must match)."""
    for name in names:
        assert evs('bag', tmp_path / 'in' / name, tmp_path / 'ref' / name, *options) == 0


def same_messages(out, ref):
    return raw_messages(out) == raw_messages(ref)


def leftovers(root):
    return [str(p) for p in root.rglob('*') if TEMP_MARK in p.name]


def read_json(path):
    return json.loads(path.read_text())


def write_broken_bag(path, like):
    """metadata.yaml of a good bag, a storage file of garbage."""
    path.mkdir(parents=True)
    shutil.copy(like / 'metadata.yaml', path / 'metadata.yaml')
    (path / next(like.glob('*.db3')).name).write_bytes(b'this is not sqlite' * 100)


def test_fleet_matches_evs_bag_reports_a_corrupt_bag_and_reruns_what_changed(
        cluster, tmp_path, capsys):
    address, _ = cluster
    write_input_bag(tmp_path / 'in' / 'a', frames=24, frame=moving_frame)
    write_input_bag(tmp_path / 'in' / 'drive' / 'b', 'mcap', frames=18, frame=moving_frame)
    write_input_bag(tmp_path / 'in' / 'drive' / 'long', frames=60, frame=moving_frame)
    write_broken_bag(tmp_path / 'in' / 'broken', tmp_path / 'in' / 'a')
    good = ['a', 'drive/b', 'drive/long']
    reference_bags(tmp_path, good)
    fleet = ['fleet', tmp_path / 'in', tmp_path / 'out', '--address', address, '--chunk-s', 1.0,
             *FAST]

    assert evs(*fleet) == 1  # one bag failed, the others are done
    err = capsys.readouterr().err
    assert 'FAILED broken:' in err and '3 labelled, 0 up to date, 1 failed of 4' in err
    out = tmp_path / 'out'
    manifest = read_json(out / 'manifest.json')
    for name in good:
        assert same_messages(out / name, tmp_path / 'ref' / name), name
        entry = manifest['bags'][name]
        assert entry['status'] == 'done' and entry['output_sha256'] == checksum(out / name)
        assert entry['input_sha256'] == checksum(tmp_path / 'in' / name)
        summary = read_json(out / name / SUMMARY_FILE)
        ref_summary = read_json(tmp_path / 'ref' / name / SUMMARY_FILE)
        assert ref_summary.pop('chunks') == [[0, entry['frames']]] and summary.pop('chunks')
        assert summary == ref_summary
        assert sorted(p.name for p in (out / name).iterdir()) == \
            sorted(p.name for p in (tmp_path / 'ref' / name).iterdir())
    assert manifest['bags']['drive/long']['chunks'] == 3  # 60 frames at 20 Hz in 1 s chunks
    failure = manifest['bags']['broken']
    assert failure['status'] == 'failed' and '\n' not in failure['error']
    assert 'broken' in failure['error'] or 'database' in failure['error']
    report = read_json(out / 'fleet_report.json')
    assert report['bags'] == {'total': 4, 'labelled': 3, 'up_to_date': 0, 'failed': 1,
                              'not_finished': 0}
    assert report['frames'] == 102 and report['keyframes'] == 8 + 6 + 20
    assert report['failures'][0]['bag'] == 'broken' and report['workers']
    assert '## Failures' in (out / 'fleet_report.md').read_text()
    assert leftovers(out) == [] and not (out / '.evs-fleet' / 'parts' / 'drive').exists()

    assert evs(*fleet) == 1  # rerun: nothing new, the corrupt bag is tried (and fails) again
    report = read_json(out / 'fleet_report.json')
    assert (report['bags']['labelled'], report['bags']['up_to_date']) == (0, 3)

    shutil.rmtree(tmp_path / 'in' / 'drive' / 'b')  # a new recording under the same name
    write_input_bag(tmp_path / 'in' / 'drive' / 'b', frames=9, frame=moving_frame)
    shutil.rmtree(tmp_path / 'ref' / 'drive' / 'b')
    reference_bags(tmp_path, ['drive/b'])
    shutil.rmtree(out / 'a')  # an output lost
    shutil.rmtree(tmp_path / 'in' / 'broken')  # and the corrupt one removed from IN
    assert evs(*fleet) == 0
    report = read_json(out / 'fleet_report.json')
    assert report['bags'] == {'total': 3, 'labelled': 2, 'up_to_date': 1, 'failed': 0,
                              'not_finished': 0}
    assert sorted(report['labelled']) == ['a', 'drive/b']
    assert report['labelled']['drive/b']['reason'] == 'input changed'
    assert report['labelled']['a']['reason'] == 'output missing'
    for name in good:
        assert same_messages(out / name, tmp_path / 'ref' / name), name


def kill_when_labelling(probe_dir, calls, killed):
    """Wait for a worker process to have run the network ``calls`` times; SIGKILL it.

    Not this process; one call per keyframe.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in probe_dir.iterdir():
            pid = int(path.name)
            if pid != os.getpid() and path.read_text().count('\n') >= calls:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.02)


def test_a_worker_killed_mid_bag_is_retried_and_the_bag_is_the_same(cluster, tmp_path):
    address, probe_dir = cluster
    for path in probe_dir.iterdir():
        path.unlink()
    write_input_bag(tmp_path / 'in' / 'slow', frames=40, frame=moving_frame)
    reference_bags(tmp_path, ['slow'])
    killed = []
    killer = threading.Thread(target=kill_when_labelling, args=(probe_dir, 5, killed))
    killer.start()
    code = evs('fleet', tmp_path / 'in', tmp_path / 'out', '--address', address, *PROBE)
    killer.join()
    assert code == 0 and len(killed) == 1
    survivors = [p for p in probe_dir.iterdir() if int(p.name) not in killed]
    # a new try ran all 14 keyframes of EVS05 (frames 0, 3, ..., 39)
    assert any(p.read_text().count('\n') >= 14 for p in survivors)
    assert same_messages(tmp_path / 'out' / 'slow', tmp_path / 'ref' / 'slow')
    entry = read_json(tmp_path / 'out' / 'manifest.json')['bags']['slow']
    assert entry['status'] == 'done' and entry['frames'] == 40
    assert leftovers(tmp_path / 'out') == []


def test_a_rerun_after_a_killed_driver_keeps_finished_chunks(cluster, tmp_path):
    address, _ = cluster
    write_input_bag(tmp_path / 'in' / 'long', frames=60, frame=moving_frame)
    write_input_bag(tmp_path / 'in' / 'short', frames=12, frame=moving_frame)
    reference_bags(tmp_path, ['long', 'short'])
    out = tmp_path / 'out'
    fleet = ['fleet', tmp_path / 'in', out, '--address', address, '--chunk-s', 0.5, *PROBE]
    command = [sys.executable, '-m', 'evs_ros.tools.cli'] + [str(a) for a in fleet]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob('.evs-fleet/parts/long/*/chunk-*.json')):
            assert driver.poll() is None, driver.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        driver.kill()
        driver.wait()
    assert not (out / 'long').exists()  # the long bag was not finished
    assert evs(*fleet) == 0
    report = read_json(out / 'fleet_report.json')
    assert report['bags']['labelled'] + report['bags']['up_to_date'] == 2
    assert report['reused_chunks'] >= 1  # finished chunks of the killed run are kept
    for name in ('long', 'short'):
        assert same_messages(out / name, tmp_path / 'ref' / name), name
    assert leftovers(out) == [] and not (out / '.evs-fleet' / 'parts' / 'long').exists()


def test_workers_take_the_network_from_a_shipped_weights_dir_only(cluster, tmp_path, capsys):
    address, _ = cluster
    write_input_bag(tmp_path / 'in' / 'a', frames=6, frame=moving_frame)
    options = ['--address', address, '--backend', 'python:fleet_models:make_cached_model',
               '--refiner', '', '--device', 'cpu']
    assert evs('fleet', tmp_path / 'in', tmp_path / 'out', *options) == 2
    assert 'the workers cannot label: FileNotFoundError: fake network' in capsys.readouterr().err
    weights = tmp_path / 'weights' / 'evs_ros' / 'fake'
    weights.mkdir(parents=True)
    (weights / 'ok').write_text('yes')
    assert evs('fleet', tmp_path / 'in', tmp_path / 'out', *options,
               '--weights-dir', tmp_path / 'weights') == 0
    entry = read_json(tmp_path / 'out' / 'manifest.json')['bags']['a']
    assert entry['status'] == 'done' and entry['frames'] == 6
    assert 'weights_dir_sha256' in read_json(tmp_path / 'out' / 'fleet_report.json')['settings']


def test_refusals_are_one_line(tmp_path, capsys):
    write_input_bag(tmp_path / 'in' / 'a', frames=2)
    assert evs('fleet', tmp_path / 'in', tmp_path / 'out', '--workers', 2, '--address',
               'auto') == 2
    assert '--workers sizes a local Ray instance' in capsys.readouterr().err
    assert evs('fleet', tmp_path / 'none', tmp_path / 'out') == 2
    assert 'neither a directory of bags nor a list file' in capsys.readouterr().err


@requires_real
def test_auto_resolves_once_to_the_real_network_of_the_shipped_weights_dir(cluster, tmp_path):
    """model.backend auto (the default) is resolved in the driver against --weights-dir.

    Every worker loads the real ESPNetv2 from the shipped folder although its own caches are empty.
    """
    address, _ = cluster
    write_input_bag(tmp_path / 'in' / 'a', frames=4, frame=moving_frame)
    cached = tmp_path / 'weights' / 'evs_ros' / 'espnetv2-s2-cityscapes'
    cached.mkdir(parents=True)
    shutil.copy(real_path('weights', 'espnetv2_s_2.0_city_1024x512.pth'), cached)
    assert evs('fleet', tmp_path / 'in', tmp_path / 'out', '--address', address, '--device',
               'cpu', '--weights-dir', tmp_path / 'weights') == 0
    report = read_json(tmp_path / 'out' / 'fleet_report.json')
    assert report['settings']['model']['backend'] == 'weights:espnetv2-s2-cityscapes'
    assert len(report['networks']) == 1 and 'espnetv2' in report['networks'][0].lower()
    summary = read_json(tmp_path / 'out' / 'a' / SUMMARY_FILE)
    assert summary['settings']['model']['backend'] == 'weights:espnetv2-s2-cityscapes'
