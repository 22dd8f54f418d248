"""``evs weights list | get | path``: one clear line per refusal, exit 2 (1 for `path` uncached).

Downloads only from servers on 127.0.0.1; the catalogue gets test entries through
``EVS_WEIGHTS_CATALOGUE``; the caches live in tmp_path.
"""

import hashlib
import json
import os

import pytest
import yaml

from evs_ros.models.weights_catalogue import builtin_catalogue
from evs_ros.tools.cli import main as evs_main
from local_http import FileServer, closed_port_url, isolate_caches

PAYLOAD = bytes(range(256)) * 1000
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolate caches in tmp_path; ``add(name, **fields)`` writes a catalogue entry."""
    isolate_caches(tmp_path, monkeypatch)
    catalogue_path = tmp_path / 'catalogue.yaml'
    catalogue_path.write_text('{}')
    monkeypatch.setenv('EVS_WEIGHTS_CATALOGUE', str(catalogue_path))
    entries = {}

    def add(name, **fields):
        entries[name] = {'kind': 'file', 'backend': 'icnet', **fields}
        catalogue_path.write_text(yaml.safe_dump(entries))

    add.cache = tmp_path / 'xdg' / 'evs_ros'
    return add


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_list_shows_every_entry_with_size_accuracy_and_the_caches(env, capsys):
    assert evs_main(['weights', 'list']) == 0
    out = capsys.readouterr().out
    for name, entry in builtin_catalogue().items():
        row = next(line for line in out.splitlines() if line.startswith(name + ' '))
        assert entry.backend in row and f'{entry.size_mb:g} MB' in row and 'no' in row
    assert str(env.cache) in out and os.path.join('hf', 'hub') in out


def test_list_verbose_and_json_give_the_source_of_each_figure(env, capsys):
    assert evs_main(['weights', 'list', '-v']) == 0
    out = capsys.readouterr().out
    assert 'Table 1(a)' in out and 'md5 6da59a72a254862106420983a7723624' in out
    b0 = out[out.index('segformer-b0-cityscapes\n'):out.index('segformer-b1-cityscapes\n')]
    assert 'measured: sliding 1024x1024 windows at short side 1024 px' in b0
    assert 'bilinearly' in b0 and 'we run:   the whole frame at short side 1024 px' in b0
    assert 'revision: 21b3847fae21ddee674abd31129307b6a1235bd9 (verified commit' in b0
    assert 'main (NOT PINNED; not pinned: only the abbreviated commit e59f265' in out
    assert evs_main(['weights', 'list', '--json']) == 0
    rows = {row['name']: row for row in json.loads(capsys.readouterr().out)}
    assert rows['segformer-b0-cityscapes']['accuracy_source'].startswith('SegFormer paper')
    assert rows['icnet-cityscapes']['cached'] is None


def test_get_then_path_then_list_marks_it_cached(env, capsys):
    with FileServer({'/w.bin': PAYLOAD}) as server:
        env('my-weights', source=server.url('/w.bin'), sha256=SHA256)
        assert evs_main(['weights', 'get', 'my-weights']) == 0
    captured = capsys.readouterr()
    path = _lines(captured.out)[0]
    assert path == str(env.cache / 'my-weights' / 'w.bin') and '100%' in captured.err
    assert 'weights:my-weights' in captured.out
    assert evs_main(['weights', 'path', 'my-weights']) == 0
    assert capsys.readouterr().out.strip() == path
    assert evs_main(['weights', 'list']) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith('my-weights'))
    assert row.rstrip().endswith('yes')


def test_path_of_an_uncached_name_is_one_line_and_exit_1(env, capsys):
    assert evs_main(['weights', 'path', 'segformer-b0-cityscapes']) == 1
    captured = capsys.readouterr()
    assert captured.out == '' and len(_lines(captured.err)) == 1
    assert '`evs weights get segformer-b0-cityscapes`' in captured.err
    assert 'models--nvidia--segformer-b0-finetuned-cityscapes-1024-1024' in captured.err


@pytest.mark.parametrize('case', ['offline', 'checksum', 'unknown', 'hub-offline'])
def test_refusals_are_one_line_and_exit_2(env, capsys, monkeypatch, case):
    with FileServer({'/w.bin': PAYLOAD}) as server:
        env('offline', source=closed_port_url(), sha256=SHA256)
        env('checksum', source=server.url('/w.bin'), sha256='0' * 64)
        if case == 'hub-offline':
            monkeypatch.setenv('HF_HUB_OFFLINE', '1')
        name = {'unknown': 'no-such-weights', 'hub-offline': 'segformer-b0-cityscapes'}.get(
            case, case)
        assert evs_main(['weights', 'get', name, '--quiet']) == 2
    captured = capsys.readouterr()
    assert len(_lines(captured.err)) == 1 and captured.err.startswith('evs weights: error: ')
    expected = {'offline': 'cannot reach 127.0.0.1', 'checksum': 'nothing was kept',
                'unknown': 'evs weights list', 'hub-offline': 'HF_HUB_OFFLINE'}[case]
    assert expected in captured.err
    assert not os.path.exists(env.cache / case / 'w.bin')


def test_get_file_imports_a_browser_download_after_verifying_it(env, tmp_path, capsys):
    env('manual', source=closed_port_url(), sha256=SHA256, filename='w.bin')
    wrong = tmp_path / 'wrong.bin'
    wrong.write_bytes(b'<html>sign in</html>')
    assert evs_main(['weights', 'get', 'manual', '--file', str(wrong)]) == 2
    assert not os.listdir(env.cache / 'manual')
    right = tmp_path / 'right.bin'
    right.write_bytes(PAYLOAD)
    assert evs_main(['weights', 'get', 'manual', '--file', str(right)]) == 0
    assert (env.cache / 'manual' / 'w.bin').read_bytes() == PAYLOAD
    assert 'nothing was kept' in capsys.readouterr().err
