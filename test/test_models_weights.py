"""``evs_ros.models.weights_cache``: catalogue, caches, explicit downloads, resolution.

Downloads only from servers on 127.0.0.1 (``local_http``); the caches live in tmp_path.
"""

import hashlib
import os
import re

import numpy as np
import pytest
import yaml

from evs_ros.models import weights_cache as wc
from evs_ros.models.backends import KINDS
from evs_ros.models.caches import is_hub_id
from evs_ros.models.download import ChecksumError, DownloadError, OfflineError
from evs_ros.models.weights_catalogue import WeightsEntry, builtin_catalogue
from local_http import FakeDrive, FakeHub, FileServer, closed_port_url, isolate_caches

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty evs_ros and Hugging Face caches under tmp_path; no proxies, no hub env."""
    isolate_caches(tmp_path, monkeypatch, wc.CATALOGUE_ENV)
    return tmp_path


def _entry(url, name='test-file', **fields):
    return WeightsEntry(name=name, kind='file', source=url, backend='icnet',
                        filename='weights.bin', **fields)


def _entry_files(tmp_path, name='test-file'):
    folder = tmp_path / 'xdg' / 'evs_ros' / name
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_builtin_catalogue_entries_are_complete_and_sourced():
    catalogue = builtin_catalogue()
    assert {'segformer-b0-cityscapes', 'segformer-b2-cityscapes', 'icnet-cityscapes',
            'espnetv2-s2-cityscapes', 'espnetv2-s1-cityscapes'} <= set(catalogue)
    for name, entry in catalogue.items():
        assert entry.backend in KINDS, name
        assert entry.size_mb > 0 and entry.size_source and entry.classes, name
        assert not entry.accuracy or entry.accuracy_source, f'{name}: figure without a source'
        # every published figure says at which scale (and windows) it was measured
        assert not entry.accuracy or entry.trained_short_side in (512, 640, 768, 1024), name
        assert 'bilinear' in entry.published_protocol() or not entry.accuracy, name
        if entry.kind == 'hub':
            assert is_hub_id(entry.source), name
            pinned = re.fullmatch(r'[0-9a-f]{40}', entry.revision)
            assert pinned or (entry.revision == 'main' and 'not pinned' in entry.revision_note)
        else:
            assert re.fullmatch(r'[0-9a-f]{64}|', entry.sha256) and (entry.sha256 or entry.md5)
    assert catalogue['segformer-b0-cityscapes-512'].trained_short_side == 512
    assert catalogue['segformer-b0-cityscapes'].window == '1024x1024'
    assert catalogue['espnetv2-s2-cityscapes'].trained_short_side == 512
    assert 'sliding 1024x1024 windows at short side 1024' in catalogue[
        'segformer-b5-cityscapes'].published_protocol()
    icnet = catalogue['icnet-cityscapes']
    assert icnet.md5 == '6da59a72a254862106420983a7723624' and icnet.convert == 'icnet_caffe'
    espnet = catalogue['espnetv2-s2-cityscapes']
    assert espnet.source.startswith('https://github.com/sacmehta/EdgeNets/raw/2b232d3f7fb6')
    assert espnet.license.startswith('MIT') and '66.4' in espnet.accuracy


def test_catalogue_file_adds_entries_and_rejects_unknown_fields(caches, monkeypatch):
    extra = caches / 'extra.yaml'
    extra.write_text(yaml.safe_dump({'my-mirror': {'kind': 'file',
                                                   'source': 'http://127.0.0.1:9/y.bin',
                                                   'backend': 'icnet', 'sha256': SHA256}}))
    monkeypatch.setenv(wc.CATALOGUE_ENV, str(extra))
    catalogue = wc.load_catalogue()
    assert catalogue['my-mirror'].sha256 == SHA256 and 'segformer-b0-cityscapes' in catalogue
    extra.write_text(yaml.safe_dump({'bad': {'kind': 'file', 'source': 'u', 'backend': 'icnet',
                                             'checksum': 'x'}}))
    with pytest.raises(DownloadError, match=r"'bad' has unknown fields \['checksum'\]"):
        wc.load_catalogue()
    extra.write_text(yaml.safe_dump({'empty': {'kind': 'hub', 'source': '', 'backend': 'hf'}}))
    with pytest.raises(DownloadError, match="'empty': weights 'empty': source is empty"):
        wc.load_catalogue()
    monkeypatch.setenv(wc.CATALOGUE_ENV, str(caches / 'missing.yaml'))
    with pytest.raises(DownloadError, match='missing.yaml.* is not a readable YAML file'):
        wc.load_catalogue()


def test_names_hub_ids_and_urls():
    hub = wc.find_entry('org/some-model', {})
    assert (hub.kind, hub.source, hub.backend) == ('hub', 'org/some-model', 'hf')
    with pytest.raises(DownloadError, match='unknown weights .*evs weights list'):
        wc.find_entry('no-such-name', {})
    with pytest.raises(DownloadError, match='is a URL'):
        wc.find_entry('https://127.0.0.1:9/w.caffemodel', {})


def test_download_shows_progress_verifies_and_leaves_no_part_file(caches, capsys):
    with FileServer({'/w.bin': PAYLOAD}) as server:
        entry = _entry(server.url('/w.bin'), sha256=SHA256)
        path = wc.get_weights(entry.name, {entry.name: entry})
    assert open(path, 'rb').read() == PAYLOAD
    assert _entry_files(caches) == ['weights.bin']
    progress = capsys.readouterr().err
    assert 'weights.bin' in progress and '100%' in progress
    assert wc.resolve_weights(entry.name, {entry.name: entry}) == f'icnet:{path}'


def test_checksum_mismatch_is_refused_and_leaves_nothing(caches):
    with FileServer({'/w.bin': PAYLOAD}) as server:
        entry = _entry(server.url('/w.bin'), sha256='0' * 64)
        with pytest.raises(ChecksumError, match='nothing was kept'):
            wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert _entry_files(caches) == []
    with pytest.raises(wc.NotCachedError):
        wc.resolve_weights(entry.name, {entry.name: entry})


def test_md5_is_checked_when_no_sha256_is_known(caches):
    with FileServer({'/w.bin': PAYLOAD}) as server:
        wrong = _entry(server.url('/w.bin'), md5=hashlib.md5(b'other').hexdigest())
        with pytest.raises(ChecksumError, match='md5'):
            wc.get_weights(wrong.name, {wrong.name: wrong}, progress=False)
        right = _entry(server.url('/w.bin'), md5=hashlib.md5(PAYLOAD).hexdigest())
        assert os.path.isfile(wc.get_weights(right.name, {right.name: right}, progress=False))


def test_interrupted_download_resumes_with_a_range_request(caches):
    cut = 100_000
    with FileServer({'/w.bin': PAYLOAD}, cut_once={'/w.bin': cut}) as server:
        entry = _entry(server.url('/w.bin'), sha256=SHA256)
        path = wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert [request[2] for request in server.requests] == [None, f'bytes={cut}-']
    assert server.bytes_sent == len(PAYLOAD)  # nothing fetched twice
    assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == SHA256


def test_part_file_of_an_earlier_run_is_resumed(caches):
    folder = caches / 'xdg' / 'evs_ros' / 'test-file'
    folder.mkdir(parents=True)
    (folder / 'weights.bin.part').write_bytes(PAYLOAD[:123_456])
    with FileServer({'/w.bin': PAYLOAD}) as server:
        entry = _entry(server.url('/w.bin'), sha256=SHA256)
        path = wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert server.requests == [('GET', '/w.bin', 'bytes=123456-')]
    assert open(path, 'rb').read() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(caches):
    folder = caches / 'xdg' / 'evs_ros' / 'test-file'
    folder.mkdir(parents=True)
    (folder / 'weights.bin.part').write_bytes(b'stale bytes')
    with FileServer({'/w.bin': PAYLOAD}, honour_range=False) as server:
        entry = _entry(server.url('/w.bin'), sha256=SHA256)
        path = wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert open(path, 'rb').read() == PAYLOAD


def test_offline_gives_one_clear_error(caches):
    entry = _entry(closed_port_url(), sha256=SHA256)
    with pytest.raises(OfflineError, match=r'cannot reach 127\.0\.0\.1:\d+ .*connected machine'):
        wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert _entry_files(caches) == []


def test_http_errors_and_html_pages_are_refused_with_the_browser_hint(caches):
    with FileServer({'/page': b'<html>sign in</html>'}, content_type='text/html') as server:
        missing = _entry(server.url('/missing'), page='http://127.0.0.1:9/weights')
        with pytest.raises(DownloadError, match='HTTP 404.*in a browser from .*--file PATH'):
            wc.get_weights(missing.name, {missing.name: missing}, progress=False)
        page = _entry(server.url('/page'), page='http://127.0.0.1:9/weights')
        with pytest.raises(DownloadError, match='web page instead of the file.*--file PATH'):
            wc.get_weights(page.name, {page.name: page}, progress=False)
    assert _entry_files(caches) == []


@pytest.mark.parametrize('style', ['form', 'link'])
def test_google_drive_confirmation_page_is_followed(caches, style):
    """Today's "Download anyway" form, and the old confirm link + download_warning cookie."""
    with FakeDrive('0BzaTest', PAYLOAD, style=style) as drive:
        entry = _entry(drive.url(), sha256=SHA256)
        path = wc.get_weights(entry.name, {entry.name: entry}, progress=False)
        paths = [request[1] for request in drive.requests]
    assert open(path, 'rb').read() == PAYLOAD and _entry_files(caches) == ['weights.bin']
    assert len(paths) == 2 and paths[0] == '/uc?export=download&id=0BzaTest'
    if style == 'form':
        assert paths[1] == '/download?id=0BzaTest&export=download&confirm=t&uuid=a1b2c3'
    else:
        assert paths[1] == '/uc?export=download&confirm=Xy_9&id=0BzaTest'


def test_google_drive_404_keeps_the_browser_hint(caches):
    with FakeDrive('0BzaTest', PAYLOAD) as drive:
        entry = _entry(drive.url('0BzaGone'), sha256=SHA256, page='https://127.0.0.1:9/icnet')
        with pytest.raises(DownloadError) as error:
            wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    message = str(error.value)
    assert 'HTTP 404' in message and '\n' not in message
    assert 'in a browser from https://127.0.0.1:9/icnet' in message
    assert '`evs weights get test-file --file PATH`' in message
    assert _entry_files(caches) == []


def test_confirm_url_reads_only_confirmation_pages():
    from evs_ros.models.download import confirm_url
    page = '<form action="/x" method="post"><input type="hidden" name="confirm" value="t"></form>'
    assert confirm_url(page, 'http://127.0.0.1:9/uc?id=1') is None  # POST: not a download link
    assert confirm_url('<html>Quota exceeded</html>', 'http://127.0.0.1:9/uc?id=1') is None
    assert confirm_url('<html></html>', 'http://127.0.0.1:9/uc?id=1&export=download',
                       {'download_warning_1_abc': 'T0k'}) == (
        'http://127.0.0.1:9/uc?id=1&export=download&confirm=T0k')


def test_uncached_names_say_what_to_run_and_what_to_copy(caches):
    entry = _entry('http://127.0.0.1:9/w.bin', sha256=SHA256)
    with pytest.raises(wc.NotCachedError) as error:
        wc.resolve_weights(entry.name, {entry.name: entry})
    message = str(error.value)
    assert '\n' not in message and '`evs weights get test-file`' in message
    assert str(caches / 'xdg' / 'evs_ros' / 'test-file') in message
    hub_message = wc.not_cached_message(wc.find_entry('org/model', {}))
    assert str(caches / 'hf' / 'hub' / 'models--org--model') in hub_message
    assert wc.expand_weights_spec('icnet:default') == 'icnet:default'


def test_caffemodel_is_converted_on_arrival(caches):
    from evs_ros.models.backends import load_backend
    from evs_ros.models.checkpoint import load_checkpoint
    from test_models_caffe import _caffemodel_bytes, _reference_network
    caffemodel = _caffemodel_bytes(_reference_network(), 'bnnomerge')
    md5 = hashlib.md5(caffemodel).hexdigest()
    with FileServer({'/icnet.caffemodel': caffemodel}) as server:
        entry = WeightsEntry(name='icnet-test', kind='file', backend='icnet', md5=md5,
                             source=server.url('/icnet.caffemodel'), convert='icnet_caffe')
        path = wc.get_weights(entry.name, {entry.name: entry}, progress=False)
    assert path.endswith(os.path.join('icnet-test', 'icnet.pt'))
    assert load_checkpoint(path, 'icnet')['meta']['source_md5'] == md5
    spec = wc.resolve_weights(entry.name, {entry.name: entry})
    assert spec == f'icnet:{path}' and load_backend(spec, device='cpu').num_classes == 19


def test_hub_patterns_prefer_safetensors_and_never_tensorflow():
    both = ['config.json', 'model.safetensors', 'pytorch_model.bin', 'tf_model.h5']
    assert wc.hub_patterns(both) == ['*.json', '*.safetensors']
    assert wc.hub_patterns(['config.json', 'pytorch_model.bin', 'tf_model.h5']) == [
        '*.json', 'pytorch_model*.bin']


def _tiny_segformer_files(tmp_path):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    config = SegformerConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                             num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
                             num_labels=19)
    folder = tmp_path / 'tiny'
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    (folder / 'preprocessor_config.json').write_text('{"image_processor_type": '
                                                     '"SegformerImageProcessor"}')
    return {name: (folder / name).read_bytes() for name in os.listdir(folder)}


def test_hub_id_is_fetched_into_the_hf_cache_without_other_formats(caches, monkeypatch):
    from transformers import AutoModelForSemanticSegmentation
    files = _tiny_segformer_files(caches)
    files.update({'tf_model.h5': b'tf', 'pytorch_model.bin': b'bin', 'README.md': b'# card'})
    with FakeHub('org/tiny-segformer', files) as hub:
        monkeypatch.setenv('HF_ENDPOINT', hub.base_url)
        snapshot = wc.get_weights('org/tiny-segformer', {})
    assert sorted(os.listdir(snapshot)) == ['config.json', 'model.safetensors',
                                            'preprocessor_config.json']
    assert snapshot.startswith(str(caches / 'hf' / 'hub' / 'models--org--tiny-segformer'))
    assert wc.resolve_weights('org/tiny-segformer', {}) == f'hf:{snapshot}'
    assert AutoModelForSemanticSegmentation.from_pretrained(snapshot).config.num_labels == 19
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # cached: served from the cache, no request
    count = len(hub.requests)
    assert wc.get_weights('org/tiny-segformer', {}) == snapshot and len(hub.requests) == count


def test_bin_only_hub_repo_gets_pytorch_model_bin(caches, monkeypatch):
    files = {'config.json': b'{}', 'pytorch_model.bin': b'weights', 'tf_model.h5': b'tf'}
    with FakeHub('nvidia/old-style', files) as hub:
        monkeypatch.setenv('HF_ENDPOINT', hub.base_url)
        snapshot = wc.get_weights('nvidia/old-style', {})
    assert sorted(os.listdir(snapshot)) == ['config.json', 'pytorch_model.bin']


def test_hub_offline_and_unreachable_give_one_clear_error(caches, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(OfflineError, match='HF_HUB_OFFLINE is set.*evs weights get org/model'):
        wc.get_weights('org/model', {})
    monkeypatch.delenv('HF_HUB_OFFLINE')
    monkeypatch.setenv('HF_ENDPOINT', closed_port_url('').rstrip('/'))
    with pytest.raises(OfflineError, match=r'cannot download org/model from 127\.0\.0\.1'):
        wc.get_weights('org/model', {})
    assert not os.path.isdir(caches / 'hf' / 'hub' / 'models--org--model' / 'snapshots')


PINNED = 'fedcba9876543210fedcba9876543210fedcba98'
NEWER = '0123456789abcdef0123456789abcdef01234567'


def _hub_entry(revision=PINNED):
    return WeightsEntry(name='tiny-pinned', kind='hub', source='org/tiny-segformer',
                        backend='hf', revision=revision, revision_note='test pin')


def test_pinned_hub_entry_fetches_and_runs_its_commit(caches, monkeypatch):
    entry = _hub_entry()
    catalogue = {entry.name: entry}
    with FakeHub('org/tiny-segformer', _tiny_segformer_files(caches), sha=PINNED) as hub:
        monkeypatch.setenv('HF_ENDPOINT', hub.base_url)
        snapshot = wc.get_weights(entry.name, catalogue, progress=False)
    assert os.path.basename(snapshot) == PINNED
    assert wc.resolve_weights(entry.name, catalogue) == f'hf:{snapshot}'


def test_a_hub_serving_another_commit_is_refused(caches, monkeypatch):
    entry = _hub_entry()
    catalogue = {entry.name: entry}
    with FakeHub('org/tiny-segformer', _tiny_segformer_files(caches), sha=NEWER) as hub:
        monkeypatch.setenv('HF_ENDPOINT', hub.base_url)
        with pytest.raises(DownloadError, match=f'verified commit {PINNED}, the hub served '
                                                f'{NEWER}: not used'):
            wc.get_weights(entry.name, catalogue, progress=False)
    with pytest.raises(wc.NotCachedError):
        wc.resolve_weights(entry.name, catalogue)


def test_revision_main_opts_out_of_the_pin_with_a_warning(caches, monkeypatch, caplog):
    entry = _hub_entry()
    catalogue = {entry.name: entry}
    with FakeHub('org/tiny-segformer', _tiny_segformer_files(caches), sha=NEWER) as hub:
        monkeypatch.setenv('HF_ENDPOINT', hub.base_url)
        snapshot = wc.get_weights(entry.name, catalogue, progress=False, revision='main')
    assert os.path.basename(snapshot) == NEWER
    with caplog.at_level('WARNING', logger='evs_ros'):
        assert wc.resolve_weights(entry.name, catalogue) == f'hf:{snapshot}'
    assert any(f'not the commit {PINNED}' in record.getMessage() for record in caplog.records)
    with pytest.raises(DownloadError, match='--revision applies to hub models only'):
        wc.get_weights('file', {'file': _entry('http://127.0.0.1:9/w.bin')}, revision='main')


def test_transformers4_cache_is_read_and_hints_name_the_right_folders(caches, monkeypatch):
    legacy = caches / 'transformers4'
    repo = legacy / 'models--org--old-model'
    (repo / 'snapshots' / NEWER).mkdir(parents=True)
    (repo / 'snapshots' / NEWER / 'config.json').write_text('{}')
    (repo / 'snapshots' / NEWER / 'pytorch_model.bin').write_bytes(b'w')
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(NEWER)
    assert wc.cached_path(wc.find_entry('org/old-model', {})) is None
    monkeypatch.setenv('TRANSFORMERS_CACHE', str(legacy))
    expected = str(repo / 'snapshots' / NEWER)
    assert wc.resolve_weights('org/old-model', {}) == f'hf:{expected}'
    from evs_ros.models.hf_hub import resolve_model_dir
    assert resolve_model_dir('org/old-model') == expected
    message = wc.not_cached_message(wc.find_entry('org/new-model', {}))
    assert str(caches / 'hf' / 'hub' / 'models--org--new-model') in message
    assert 'point HF_HUB_CACHE at the copy, or HF_HOME at the folder that holds the copied hub/' \
        in message


def test_hub_ids_follow_huggingface_hub_rules():
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    for text in ('org/_x', 'org/model', 'a.b/c-d_e', 'org/-x', 'org/x-', 'a--b/c', 'a/b..c',
                 'org/x.git', 'org', 'a/b/c', 'org/caf\u00e9', '-org/x', 'o/' + 'x' * 97):
        try:
            validate_repo_id(text)
            valid = '/' in text
        except HFValidationError:
            valid = False
        assert is_hub_id(text) == valid, text
