"""The real download path of the default real network, end to end, without the internet.

The published ESPNetv2 file from ``../shared/real`` is served on 127.0.0.1 under the catalogue
entry's own name, size and sha256 (only the URL is replaced); then ``evs weights get``, the
cache, ``weights:NAME`` in ``evs run`` and in the node over DDS.
"""

import json
import os
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import yaml

from evs_ros.data.camvid import list_sequences
from evs_ros.data.video import VideoWriter
from evs_ros.models.backends import load_backend
from evs_ros.models.loading import resolve_backend_spec
from evs_ros.models.weights_catalogue import builtin_catalogue
from evs_ros.tools.cli import main as evs_main
from local_http import FileServer, isolate_caches
from real_data import real_path, requires_real

pytestmark = requires_real
NAME = 'espnetv2-s2-cityscapes'
ENTRY = builtin_catalogue()[NAME]


def real_bytes() -> bytes:
    with open(real_path('weights', ENTRY.filename), 'rb') as stream:
        return stream.read()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """``serve(body) -> cache folder``: the catalogue entry with its URL on 127.0.0.1."""
    isolate_caches(tmp_path, monkeypatch)
    servers = []

    def serve(body: bytes, served_entry=ENTRY):
        filename = served_entry.filename or os.path.basename(served_entry.source)
        server = FileServer({'/' + filename: body}).__enter__()
        servers.append(server)
        entry = {key: value for key, value in asdict(served_entry).items() if key != 'name'}
        entry['source'] = server.url('/' + filename)
        catalogue = tmp_path / 'catalogue.yaml'
        catalogue.write_text(yaml.safe_dump({served_entry.name: entry}))
        monkeypatch.setenv('EVS_WEIGHTS_CATALOGUE', str(catalogue))
        return tmp_path / 'xdg' / 'evs_ros' / served_entry.name

    yield serve
    for server in servers:
        server.__exit__(None, None, None)


def write_camvid_clip(path, frames: int = 6):
    """Return the first frames of the real CamVid drive as an mp4 (480x360)."""
    sequence = list_sequences(real_path('camvid'), 'val')[0]
    with VideoWriter(str(path), fps=15.0) as writer:
        for image_path in sequence.images[:frames]:
            writer.write(cv2.imread(image_path))
    return path


def test_get_verifies_caches_and_runs_the_real_network(served, tmp_path, capsys):
    cache = served(real_bytes())
    assert evs_main(['weights', 'get', NAME, '--quiet']) == 0
    cached = cache / ENTRY.filename
    assert cached.read_bytes() == real_bytes()
    assert not [name for name in os.listdir(cache) if name != ENTRY.filename]
    capsys.readouterr()
    video = write_camvid_clip(tmp_path / 'drive.mp4')
    out = tmp_path / 'out'
    assert evs_main(['run', str(video), '--out', str(out), '--backend', f'weights:{NAME}',
                     '--refiner', '', '--operating-point', 'EVS05', '--no-overlay']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames'] == 6 and summary['keyframes'] == 2
    labels = cv2.imread(str(out / 'labels' / '000000.png'), cv2.IMREAD_UNCHANGED)
    road, sky = 0, 10  # a real network sees the road at the bottom and sky at the top
    assert np.mean(labels[-60:, 100:380] == road) > 0.5
    assert np.mean(labels[:30] == sky) > 0.3


@pytest.mark.parametrize('case', ['checksum', 'truncated'])
def test_a_wrong_or_truncated_file_is_refused_and_nothing_stays(served, capsys, case):
    body = real_bytes()
    body = body[:len(body) // 2] if case == 'truncated' else body[:-1] + b'\0'
    cache = served(body)
    assert evs_main(['weights', 'get', NAME, '--quiet']) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert 'sha256' in err or 'checksum' in err
    assert not cache.exists() or not os.listdir(cache)


def test_the_node_labels_real_frames_with_weights_name(served, harness, ros_env, tmp_path):
    cache = served(real_bytes())
    assert evs_main(['weights', 'get', NAME, '--quiet']) == 0
    assert cache.is_dir()
    ros_env.update(XDG_CACHE_HOME=str(tmp_path / 'xdg'))
    node = harness({'model.backend': f'weights:{NAME}', 'publish.overlay': False})
    frame = cv2.imread(list_sequences(real_path('camvid'), 'val')[0].images[0])
    node.player.publish(frame, 1_700_000_000_000_000_000)
    # topics arrive independently: wait for labels itself, not for status
    assert node.player.wait_for(lambda: node.player.count('labels') > 0, 60.0), node.log()
    labels = node.player.messages('labels')[-1]
    assert (labels.height, labels.width) == (360, 480)
    assert 'espnetv2' in node.log().lower() or NAME in node.log()


def test_the_edgetpu_deeplab_entry_fetches_and_labels_its_reference_image(served):
    """``weights:deeplab-edgetpu-slim-cityscapes``: the tflite file, verified, as a backend."""
    entry = builtin_catalogue()['deeplab-edgetpu-slim-cityscapes']
    path = real_path('weights', os.path.basename(entry.source))
    with open(path, 'rb') as stream:
        body = stream.read()
    served(body, entry)
    assert evs_main(['weights', 'get', entry.name, '--quiet']) == 0
    model = load_backend(resolve_backend_spec(f'weights:{entry.name}'))
    assert model.labels_only
    image = cv2.imread(real_path('coral', 'cityscapes_segmentation.bmp'))
    expected = cv2.imread(real_path('coral', 'cityscapes_segmentation_mask.bmp'),
                          cv2.IMREAD_UNCHANGED)
    labels = cv2.resize(model.predict(image).probs.argmax(0).astype(np.uint8),
                        expected.shape[::-1], interpolation=cv2.INTER_NEAREST)
    assert np.mean(labels == expected) >= 0.91
