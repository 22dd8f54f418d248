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
from evs_ros.models.download import ChecksumError, DownloadError, OfflineError
from evs_ros.models.weights_catalogue import WeightsEntry, builtin_catalogue
from local_http import FakeHub, FileServer, closed_port_url, isolate_caches

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
        assert entry.backend in ('hf', 'icnet', 'espnet'), name
        assert entry.size_mb > 0 and entry.size_source and entry.classes, name
        assert not entry.accuracy or entry.accuracy_source, f'{name}: figure without a source'
        if entry.kind == 'hub':
            assert wc.HUB_ID.match(entry.source), name
        else:
            assert re.fullmatch(r'[0-9a-f]{64}|', entry.sha256) and (entry.sha256 or entry.md5)
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


def test_http_errors_and_html_pages_are_refused(caches):
    with FileServer({'/page': b'<html>sign in</html>'}, content_type='text/html') as server:
        missing = _entry(server.url('/missing'))
        with pytest.raises(DownloadError, match='HTTP 404'):
            wc.get_weights(missing.name, {missing.name: missing}, progress=False)
        page = _entry(server.url('/page'), page='http://127.0.0.1:9/weights')
        with pytest.raises(DownloadError, match='web page instead of the file.*--file PATH'):
            wc.get_weights(page.name, {page.name: page}, progress=False)


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
