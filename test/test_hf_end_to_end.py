"""hf: networks end to end through `evs run` and the installed node over DDS (issue 10).

A tiny random SegFormer and a tiny UperNet (the second family), each with five non-Cityscapes
classes and a matching random Refiner, are saved to temp dirs. Both run with W and R on and off;
their own ids are published and their class names appear in `evs run`'s summary and in the
node's read-only `class_names` parameter. Bad input gets one line each: exit code 2 from the CLI,
and the node refuses to start with the reason (a directory without a config, an uncached hub id
while offline, a model without a semantic head, a Refiner trained for another network).
EvsPipeline and the runtime are covered in test_models_hf.py.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter

from evs_ros.data.video import VideoWriter
from evs_ros.models import load_backend
from evs_ros.models.backends import DEFAULT_REFINER
from evs_ros.models.checkpoint import save_checkpoint
from evs_ros.models.refiner import RefinerNet
from evs_ros.testing.player import start_node, stop_node
from evs_ros.tools.cli import main as evs_main
from node_harness import PARAMS_FILE, labels_array, stamp
from tiny_hf import FEATURE_CHANNELS, build_tiny_model, save_tiny_model

torch.set_num_threads(1)
OWN_NAMES = {0: 'floor', 1: 'wall', 2: 'robot', 3: 'person', 4: 'sky'}
FAMILIES = ('segformer', 'upernet')
HEIGHT, WIDTH, FRAMES = 64, 96, 6
HF_CACHE_VARIABLES = ('HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME')


def moving_frames(count=FRAMES):
    """uint8 (H, W, 3) frames of a smooth texture panning right by 2 px per frame."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (HEIGHT, WIDTH + 2 * count, 3), np.uint8),
                            (0, 0), 2.0)
    return [np.ascontiguousarray(base[:, 2 * i:2 * i + WIDTH]) for i in range(count)]


@pytest.fixture(scope='module')
def networks(tmp_path_factory):
    """Map family -> (model dir, matching random Refiner checkpoint), built on first use."""
    cache = {}

    def get(family):
        if family not in cache:
            root = tmp_path_factory.mktemp(family)
            model_dir = save_tiny_model(family, root / 'model', id2label=OWN_NAMES)
            config = {'num_classes': len(OWN_NAMES), 'residual': True, 'width_mult': 0.25,
                      'feature_channels': FEATURE_CHANNELS[family]}
            torch.manual_seed(0)
            refiner = str(root / 'refiner.pt')
            save_checkpoint(refiner, 'refiner', config, RefinerNet(**config),
                            class_names=list(OWN_NAMES.values()))
            cache[family] = model_dir, refiner
        return cache[family]
    return get


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('clip') / 'clip.mp4')
    with VideoWriter(path, fps=10.0) as writer:
        for frame in moving_frames():
            writer.write(frame)
    return path


def decoded_frames(path):
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.mark.parametrize('family', FAMILIES)
def test_evs_run_with_w_and_r_on_and_off(networks, clip, tmp_path, family):
    model_dir, refiner = networks(family)
    own_ids = load_backend(f'hf:{model_dir}', device='cpu').predict(
        decoded_frames(clip)[0]).probs.argmax(axis=0)
    for preset, warp, refine in (('EVS04', True, True), ('EVS05', True, False),
                                 ('EVS08', False, False)):
        out = tmp_path / preset
        assert evs_main(['run', clip, '--out', str(out), '--backend', f'hf:{model_dir}',
                         '--refiner', refiner, '--operating-point', preset, '--no-overlay',
                         '--device', 'cpu']) == 0
        summary = json.loads((out / 'summary.json').read_text())
        assert summary['class_names'] == list(OWN_NAMES.values())
        assert summary['frames'] == FRAMES and summary['refiner'] == (refiner if refine else '')
        propagated = [i for i in range(FRAMES) if i not in summary['keyframe_indices']]
        assert propagated and summary['refined'] == (len(propagated) if refine else 0)
        warped = [summary['inconsistent_fraction'][i] is not None for i in propagated]
        assert all(warped) if warp else not any(warped)
        first = cv2.imread(str(out / 'labels' / '000000.png'), cv2.IMREAD_UNCHANGED)
        assert first.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(first[::4, ::4], own_ids)  # own ids, not trainIds
        for path in sorted((out / 'labels').iterdir()):
            assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).max() < len(OWN_NAMES)


def call(player, service_type, node_name, kind, request):
    client = player.node.create_client(service_type, f'/{node_name}/{kind}_parameters')
    assert client.wait_for_service(timeout_sec=20.0)
    future = client.call_async(request)
    assert player.wait_for(future.done, 20.0), f'{kind}_parameters timed out'
    player.node.destroy_client(client)
    return future.result()


def get_parameter(player, name, node_name='evs_node'):
    values = call(player, GetParameters, node_name, 'get',
                  GetParameters.Request(names=[name])).values
    from rcl_interfaces.msg import Parameter as ParameterMsg
    return Parameter.from_parameter_msg(ParameterMsg(name=name, value=values[0])).value


def set_parameter(player, name, value, node_name='evs_node'):
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call(player, SetParameters, node_name, 'set', request).results[0].successful


def play(node, frames, first):
    """Publish ``frames`` with stamps ``first..``, one at a time; return their status messages."""
    for offset, frame in enumerate(frames):
        assert node.send_and_wait(frame, stamp(first + offset)), node.log()
    assert node.player.wait_for(lambda: node.player.count('status') >= first + len(frames), 10)
    return node.player.messages('status')[first:first + len(frames)]


@pytest.mark.parametrize('family', FAMILIES)
def test_node_with_w_and_r_on_and_off(harness, networks, family):
    model_dir, refiner = networks(family)
    node = harness({'model.backend': f'hf:{model_dir}', 'model.refiner': refiner,
                    'operating_point.preset': 'EVS04'}, topics=('labels', 'status'))
    assert get_parameter(node.player, 'class_names') == list(OWN_NAMES.values())
    frames = moving_frames()
    statuses = play(node, frames[:3], 0)
    assert [s.keyframe_requested for s in statuses] == [True, False, False]
    assert [s.refined for s in statuses] == [False, True, True]
    assert node.player.wait_for(lambda: node.player.count('labels') >= 3, 10)
    labels = [labels_array(msg) for msg in node.player.messages('labels')]
    assert all(label.shape == (HEIGHT, WIDTH) and label.max() < len(OWN_NAMES)
               for label in labels)
    own_ids = load_backend(f'hf:{model_dir}', device='cpu').predict(frames[0]).probs
    np.testing.assert_array_equal(labels[0][::4, ::4], own_ids.argmax(axis=0))
    assert set_parameter(node.player, 'operating_point.refine', False)
    without_r = [s for s in play(node, frames[3:], 3) if not s.keyframe_requested]
    assert without_r and all(not s.refined and s.flow_ms > 0 for s in without_r)
    assert set_parameter(node.player, 'operating_point.warp', False)
    without_w = [s for s in play(node, frames[:3], 6) if not s.keyframe_requested]
    assert without_w and all(s.flow_ms == 0 and not s.refined for s in without_w)


def test_node_with_the_shipped_refiner_and_another_network_runs_without_r(harness, networks):
    model_dir, _ = networks('segformer')
    node = harness({'model.backend': f'hf:{model_dir}', 'model.refiner': 'default',
                    'operating_point.preset': 'EVS04'}, topics=('status',))
    assert node.wait_log('the shipped Refiner does not fit')
    statuses = play(node, moving_frames()[:3], 0)
    assert [s.keyframe_requested for s in statuses] == [True, False, False]
    assert not any(s.refined for s in statuses)


@pytest.fixture
def bad_inputs(tmp_path, networks):
    """Map case -> (model.backend, model.refiner, what the one-line error must say)."""
    no_config = tmp_path / 'no_config'
    no_config.mkdir()
    (no_config / 'model.safetensors').write_bytes(b'')
    import transformers
    encoder_only = transformers.SegformerModel(build_tiny_model('segformer').config)
    encoder_only.save_pretrained(tmp_path / 'encoder')
    model_dir, _ = networks('segformer')
    hub_id = 'nvidia/segformer-b0-finetuned-cityscapes-1024-1024'
    return {
        'no config': (f'hf:{no_config}', '', 'has no config.json'),
        'uncached hub id': (f'hf:{hub_id}', '', f'evs weights get {hub_id}'),
        'no semantic head': (f'hf:{tmp_path / "encoder"}', '',
                             'has no semantic segmentation head'),
        'refiner of another network': (f'hf:{model_dir}', DEFAULT_REFINER,
                                       'was trained for another network'),
    }


def offline_env(environ, hf_home):
    """``environ`` with an empty Hugging Face home and HF_HUB_OFFLINE=1."""
    env = {key: value for key, value in environ.items() if key not in HF_CACHE_VARIABLES}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE='1')
    return env


def test_evs_run_refuses_bad_input_with_one_line(bad_inputs, clip, tmp_path, monkeypatch,
                                                 capsys):
    for name in HF_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf_home'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    for case, (backend, refiner, reason) in bad_inputs.items():
        code = evs_main(['run', clip, '--out', str(tmp_path / 'out'), '--backend', backend,
                         '--refiner', refiner, '--operating-point', 'EVS04', '--no-overlay'])
        error = capsys.readouterr().err.strip()
        assert code == 2, case
        assert error.startswith('evs run: error: ') and reason in error, (case, error)
        assert len(error.splitlines()) == 1, (case, error)
    assert not (tmp_path / 'hf_home' / 'hub').exists() or \
        not any((tmp_path / 'hf_home' / 'hub').iterdir())


def test_node_refuses_to_start_with_the_reason(bad_inputs, ros_env, tmp_path):
    env = offline_env(ros_env, tmp_path / 'hf_home')
    started = {}
    for case, (backend, refiner, reason) in bad_inputs.items():
        log = str(tmp_path / f'{case.replace(" ", "_")}.log')
        params = {'model.backend': backend, 'model.refiner': refiner or "''"}
        started[case] = start_node(env, PARAMS_FILE, params, log_path=log), log, reason
    for case, (process, log, reason) in started.items():
        try:
            code = process.wait(timeout=60)
        finally:
            stop_node(process)
        with open(log, encoding='utf-8') as stream:
            errors = [line for line in stream.read().splitlines() if 'error' in line.lower()]
        assert code == 2, (case, errors)
        assert len(errors) == 1 and errors[0].startswith('evs_node: error: '), (case, errors)
        assert reason in errors[0], (case, errors)
