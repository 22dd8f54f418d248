"""Engines (issue 18).

Every engine installed here gives the labels of torch eager on the shipped ICNet, its Refiner and a
tiny random SegFormer; graphs are exported once per input shape, cached atomically and reused; a
network that cannot be exported runs on torch with one line.

Tolerances (stated here, checked for every engine that installs): labels agree with torch eager
on >= 99.5 % of pixels; fp32 probabilities within 1e-4 (absolute) of torch's; bf16 within 0.15.
Networks: the shipped ICNet and Refiner on synthetic street frames, a tiny random SegFormer,
ESPNetv2 (random weights, and the published Cityscapes weights on a real Cityscapes frame when
../shared/real is there), ONNX files.
"""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from evs_ros.config import ModelConfig
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.models import engine_cache, engines
from evs_ros.models.backends import load_backend, load_refiner
from evs_ros.models.graph import EngineRunner, engine_name, torch_twin, use_engine, warm_up
from evs_ros.models.loading import load_models
from real_data import real_path, requires_real

torch.set_num_threads(1)
CPU_ENGINES = [name for name in ('openvino', 'onnxruntime') if engines.engine_version(name)]
LABEL_AGREEMENT = 0.995
PROBS_ATOL = {'fp32': 1e-4, 'bf16': 0.15}
TEST_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module')
def frames():
    """Two consecutive synthetic street frames, 256x128 (the shipped networks know streets)."""
    return [frame.image_bgr for frame in render_snippet(
        SynthConfig(width=256, height=128, num_frames=2, seed=2000000))]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    return tmp_path / 'xdg' / 'evs_ros' / 'engines'


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(0) == b.argmax(0)).mean())


def _check_parity(probs, reference, precision='fp32'):
    assert probs.shape == reference.shape and probs.dtype == np.float32
    assert _agreement(probs, reference) >= LABEL_AGREEMENT
    np.testing.assert_allclose(probs, reference, atol=PROBS_ATOL[precision])


def test_the_engines_this_project_installs_are_here():
    """requirements.txt installs both CPU engines.

    The parity tests below must not be skipped by accident.
    """
    assert CPU_ENGINES == ['openvino', 'onnxruntime']


@pytest.mark.parametrize('engine', CPU_ENGINES)
def test_shipped_icnet_and_refiner_match_torch(engine, frames, cache):
    model = load_backend('icnet:default', 'cpu')
    refiner = load_refiner('default', 'cpu')
    assert use_engine(model, engine) and use_engine(refiner, engine)
    reference, reference_refiner = torch_twin(model), torch_twin(refiner)
    assert engine_name(model) == engine and engine_name(reference) == 'torch'
    prediction, expected = model.predict(frames[0]), reference.predict(frames[0])
    _check_parity(prediction.probs, expected.probs)
    np.testing.assert_allclose(prediction.features, expected.features, atol=1e-3)
    refined = refiner.refine(frames[1], expected.probs, expected.features)
    _check_parity(refined, reference_refiner.refine(frames[1], expected.probs,
                                                    expected.features))
    assert model.runner.failure is None and refiner.runner.failure is None
    assert len(model.runner.built) == 1 and len(refiner.runner.built) == 1


@pytest.mark.parametrize('engine', CPU_ENGINES)
def test_tiny_segformer_matches_torch(engine, tmp_path, cache):
    from tiny_hf import save_tiny_model
    model = load_backend(f'hf:{save_tiny_model("segformer", tmp_path / "tiny")}', 'cpu')
    use_engine(model, engine)
    reference = torch_twin(model)
    image = np.random.default_rng(1).integers(0, 256, (72, 100, 3), dtype=np.uint8)
    prediction, expected = model.predict(image), reference.predict(image)
    _check_parity(prediction.probs, expected.probs)
    np.testing.assert_allclose(prediction.features, expected.features, atol=1e-4)
    assert model.runner.failure is None and engine_name(model) == engine


@pytest.mark.parametrize('engine', CPU_ENGINES)
def test_espnetv2_matches_torch(engine, frames, cache):
    """ESPNetv2 exports with its pyramid's adaptive pooling and matches torch.

    Width 2.0, the published layout; random weights here, the real ones in the test below when
    ../shared/real is there.
    """
    from evs_ros.models.espnet import ESPNetv2, EspnetModel
    torch.manual_seed(0)
    model = EspnetModel(ESPNetv2(2.0, 20).eval(), 'cpu')
    use_engine(model, engine)
    reference = torch_twin(model)
    prediction, expected = model.predict(frames[0]), reference.predict(frames[0])
    _check_parity(prediction.probs, expected.probs)
    np.testing.assert_allclose(prediction.features, expected.features, atol=1e-3)
    assert model.runner.failure is None


@requires_real
@pytest.mark.parametrize('engine', CPU_ENGINES)
def test_real_espnetv2_labels_match_torch_on_a_real_frame(engine, cache):
    import cv2
    weights = real_path('weights', 'espnetv2_s_2.0_city_1024x512.pth')
    image = cv2.imread(real_path('cityscapes', 'frankfurt_000001_058914_leftImg8bit.png'))
    image = cv2.resize(image, (1024, 512), interpolation=cv2.INTER_AREA)
    model = load_backend(f'espnet:{weights}', 'cpu')
    use_engine(model, engine)
    _check_parity(model.predict(image).probs, torch_twin(model).predict(image).probs)


@pytest.mark.skipif('openvino' not in CPU_ENGINES, reason='needs openvino')
def test_bf16_on_cpus_that_have_it(frames, cache):
    if 'BF16' not in engines.openvino_cpu_capabilities():
        pytest.skip('this CPU has no bf16 arithmetic')
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, 'openvino', 'bf16')
    reference = torch_twin(model)
    _check_parity(model.predict(frames[0]).probs, reference.predict(frames[0]).probs, 'bf16')


def test_graphs_are_cached_per_shape_and_reused(frames, cache, monkeypatch):
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, CPU_ENGINES[0])
    model.predict(frames[0])
    model.predict(frames[0][:96, :200])  # a new resolution (or D): its own graph
    folder = model.runner.folder
    files = sorted(os.listdir(folder))
    assert [name.split('-')[0] for name in files] == ['1x3x129x257', '1x3x97x225']
    assert all(name.endswith('.onnx') and engine_cache.TEMP_MARK not in name for name in files)
    again = load_backend('icnet:default', 'cpu')  # a new process would do the same
    use_engine(again, CPU_ENGINES[0])

    def no_export(*args, **kwargs):
        raise AssertionError('exported again')

    monkeypatch.setattr(torch.onnx, 'export', no_export)
    again.predict(frames[0])
    assert again.runner.failure is None and sorted(os.listdir(folder)) == files
    other = load_backend('icnet:default', 'cpu')
    other.network.conv6_cls.bias.data += 1.0  # other weights: another folder
    use_engine(other, CPU_ENGINES[0])
    assert other.runner.folder != folder


def test_a_killed_export_leaves_nothing_half_written(cache, tmp_path):
    """An export killed mid-write leaves only a temporary, which the next export removes."""
    script = textwrap.dedent("""
        import sys, time, torch
        sys.path.insert(0, %r)
        from evs_ros.models.backends import load_backend
        from evs_ros.models.graph import use_engine
        def slow_export(module, args, path, **kwargs):
            with open(path, 'wb') as stream:
                stream.write(b'partial')
                stream.flush()
            print('writing', flush=True)
            time.sleep(60)
        torch.onnx.export = slow_export
        model = load_backend('icnet:default', 'cpu')
        use_engine(model, 'onnxruntime')
        model.predict(__import__('numpy').zeros((64, 96, 3), 'uint8'))
    """ % TEST_DIR)
    process = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                               env=dict(os.environ), text=True)
    try:
        assert process.stdout.readline().strip() == 'writing'
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    [folder] = os.listdir(cache)
    names = os.listdir(cache / folder)
    assert len(names) == 1 and engine_cache.TEMP_MARK in names[0]  # only the temporary
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, 'onnxruntime')
    model.predict(np.zeros((64, 96, 3), np.uint8))
    names = os.listdir(cache / folder)
    assert len(names) == 1 and names[0].endswith('.onnx') and model.runner.failure is None


def test_background_builds_run_torch_until_the_graph_is_ready(frames, cache):
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, CPU_ENGINES[0])
    reference = torch_twin(model).predict(frames[0])
    runner = model.runner
    runner.background = True
    first = model.predict(frames[0])  # no graph yet: torch runs it, the build starts
    np.testing.assert_array_equal(first.probs, reference.probs)
    deadline = time.monotonic() + 120
    while not runner.built and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.built and runner.failure is None
    calls = []
    session = next(iter(runner._sessions.values()))
    session.run = lambda inputs, run=session.run: calls.append(1) or run(inputs)
    _check_parity(model.predict(frames[0]).probs, reference.probs)
    assert calls == [1]


def test_warm_up_opens_cached_graphs_then_builds_in_the_background(frames, cache):
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, CPU_ENGINES[0])
    model.predict(frames[0])  # an earlier run at this resolution
    fresh = load_backend('icnet:default', 'cpu')
    use_engine(fresh, CPU_ENGINES[0])
    opened = warm_up(fresh, None, (64, 96), threads=1)
    assert opened == ['icnet 1x3x129x257'] and fresh.runner.background
    assert len(fresh.runner._sessions) == 1  # the cached graph is open, the 64x96 one is not


def test_export_failures_and_non_exportable_networks_run_on_torch_with_one_line(caplog, cache):
    model = load_backend('icnet:default', 'cpu')
    use_engine(model, CPU_ENGINES[0])

    def broken(shapes):
        raise RuntimeError('unsupported operator Foo')

    model.runner.export = broken
    image = np.zeros((64, 96, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        prediction = model.predict(image)
        model.predict(image)
    lines = [r.getMessage() for r in caplog.records if 'unsupported operator' in r.getMessage()]
    assert len(lines) == 1 and 'runs on torch' in lines[0]
    np.testing.assert_array_equal(prediction.probs, torch_twin(model).predict(image).probs)
    assert engine_name(model).endswith('(failed: torch)')
    caplog.clear()
    config = ModelConfig(backend='python:fake_models:make_model', refiner='', engine='auto')
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        python_model, _ = load_models(config)
    assert engine_name(python_model) == 'python'
    notes = [r.getMessage() for r in caplog.records if 'does not apply' in r.getMessage()]
    assert len(notes) == 1 and 'not exportable' in notes[0]


def test_load_models_names_the_engine_and_why_in_one_line(caplog, cache):
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        model, refiner = load_models(ModelConfig(device='cpu'))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('engine ')]
    assert len(lines) == 1 and 'auto: CPU' in lines[0] and 'and its Refiner' in lines[0]
    assert engine_name(model) == engine_name(refiner) == CPU_ENGINES[0]
    torch_model, _ = load_models(ModelConfig(device='cpu', engine='torch'), False)
    assert engine_name(torch_model) == 'torch'


def test_fp16_is_honoured_or_refused_with_one_line(caplog, cache):
    for engine in ['torch'] + CPU_ENGINES:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger='evs_ros'):
            load_models(ModelConfig(device='cpu', engine=engine, fp16=True), False)
        notes = [r.getMessage() for r in caplog.records if 'fp16' in r.getMessage()
                 or 'precision' in r.getMessage()]
        chosen, _ = engines.choose_precision(engine, 'fp16', 'cpu')
        if chosen == 'fp16':  # honoured: only the engine line
            assert not [n for n in notes if 'refused' in n]
        else:
            assert len([n for n in notes if not n.startswith('engine ')]) == 1, notes


def test_auto_picks_the_fastest_engine_installed(monkeypatch):
    installed = {'openvino': '1', 'onnxruntime': '1', 'tensorrt': None}
    monkeypatch.setattr(engines, 'engine_version', lambda name: installed.get(name, '1'))
    assert engines.choose_engine('auto', 'cpu')[0] == 'openvino'
    assert engines.choose_engine('auto', 'cuda')[0] == 'torch'
    installed.update(tensorrt='10', openvino=None)
    assert engines.choose_engine('auto', 'cuda') == ('tensorrt',
                                                     'auto: NVIDIA GPU and TensorRT is installed')
    assert engines.choose_engine('auto', 'cpu')[0] == 'onnxruntime'
    installed.update(onnxruntime=None)
    assert engines.choose_engine('auto', 'cpu')[0] == 'torch'
    installed.update(onnxruntime='1', onnx=None)  # nothing can export: torch, and why
    engine, why = engines.choose_engine('auto', 'cpu')
    assert engine == 'torch' and 'pip install onnx' in why
    with pytest.raises(ImportError, match='pip install openvino'):
        engines.choose_engine('openvino', 'cpu')
    with pytest.raises(ValueError, match='needs an NVIDIA GPU'):
        engines.choose_engine('tensorrt', 'cpu')
    with pytest.raises(ValueError, match='model.device=cpu'):
        engines.choose_engine('openvino', 'cuda')


@pytest.mark.parametrize('engine', CPU_ENGINES)
def test_onnx_files_run_on_the_engine(engine, tmp_path, frames, cache):
    from evs_ros.tools.cli import main as evs_main
    path = str(tmp_path / 'icnet.onnx')
    assert evs_main(['export', '--backend', 'icnet:default', '--format', 'onnx', '--out', path,
                     '--size', '128x256']) == 0
    model, _ = load_models(ModelConfig(backend=f'onnx:{path}', refiner='', engine=engine), False)
    assert model.engine == engine
    expected = load_backend('icnet:default', 'cpu').predict(frames[0])
    _check_parity(model.predict(frames[0]).probs, expected.probs)


def test_config_refuses_contradictions_in_one_line():
    with pytest.raises(ValueError, match='model.fp16=true contradicts model.precision=bf16'):
        ModelConfig(fp16=True, precision='bf16')
    with pytest.raises(ValueError, match='model.precision=int8 needs model.calibration'):
        ModelConfig(precision='int8')
    with pytest.raises(ValueError, match='model.engine'):
        ModelConfig(engine='tflite')
    assert ModelConfig(fp16=True).effective_precision == 'fp16'


def test_runner_for_tensorrt_keys_its_plan_by_version_precision_and_gpu(monkeypatch, cache):
    monkeypatch.setattr(engines, 'engine_version', lambda name: '10.9')
    model = load_backend('icnet:default', 'cpu')
    runner = EngineRunner(model.runner.module, 'icnet', 'tensorrt', 'fp16', 'cuda')
    plan = os.path.basename(runner._plan_path([(1, 3, 65, 129)]))
    assert plan.startswith('1x3x65x129-tensorrt10.9-fp16') and plan.endswith('.plan')


@pytest.mark.skipif('openvino' not in CPU_ENGINES or not engines.engine_version('nncf'),
                    reason='needs openvino and nncf')
def test_int8_is_calibrated_on_the_users_frames_and_cached(frames, cache, tmp_path, caplog):
    """model.precision int8 (opt-in).

    NNCF quantises the keyframe network on the frames the user names, once per shape (cached);
    labels stay close to torch eager (>= 97 % here: the speed and mIoU change are measured in
    docs/benchmarks.md section 13); the Refiner stays fp32.
    """
    import cv2
    folder = tmp_path / 'calibration' / 'sub'
    folder.mkdir(parents=True)
    for index, frame in enumerate(render_snippet(SynthConfig(width=256, height=128,
                                                             num_frames=8, seed=7))):
        cv2.imwrite(str(folder / f'{index:02d}.png'), frame.image_bgr)
    config = ModelConfig(device='cpu', engine='openvino', precision='int8',
                         calibration=str(tmp_path / 'calibration'))
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        model, refiner = load_models(config)
        prediction = model.predict(frames[0])
    assert model.runner.failure is None and model.runner.precision == 'int8'
    assert refiner.runner.precision == 'fp32'
    assert any('quantising' in r.getMessage() for r in caplog.records)
    expected = torch_twin(model).predict(frames[0])
    assert _agreement(prediction.probs, expected.probs) >= 0.97
    int8_dirs = [name for name in os.listdir(model.runner.folder) if '-int8-' in name]
    assert len(int8_dirs) == 1 and engine_cache.TEMP_MARK not in int8_dirs[0]
    caplog.clear()
    again, _ = load_models(config, False)
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        again.predict(frames[0])
    assert not any('quantising' in r.getMessage() for r in caplog.records)  # cached
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='holds no readable frame'):
        load_models(ModelConfig(device='cpu', engine='openvino', precision='int8',
                                calibration=str(empty)), False)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_models(ModelConfig(device='cpu', engine='openvino', precision='int8',
                                calibration=str(tmp_path / 'missing.mp4')), False)


def test_evs_export_builds_the_engine_graphs_the_warm_up_opens(cache, capsys):
    from evs_ros.tools.cli import main as evs_main
    assert evs_main(['export', '--format', 'engine', '--backend', 'icnet:default',
                     '--engine', CPU_ENGINES[0], '--size', '96x160,64x96']) == 0
    printed = capsys.readouterr().out
    assert 'icnet on' in printed and 'refiner on' in printed and '1x3x97x161' in printed
    model, refiner = load_models(ModelConfig(device='cpu', engine=CPU_ENGINES[0]))
    opened = warm_up(model, refiner, (64, 96), threads=1)
    assert sorted(opened) == ['icnet 1x3x65x97', 'icnet 1x3x97x161',
                              'refiner 1x3x64x96_1x19x16x24_1x128x4x6',
                              'refiner 1x3x96x160_1x19x24x40_1x128x6x10']
    assert evs_main(['export', '--format', 'onnx', '--backend', 'icnet:default']) == 2
    assert 'needs --out' in capsys.readouterr().err


def test_the_network_input_scale_reaches_the_engine_as_it_is(frames, cache):
    """model.input_short_side (issue 21) decides the engine graph's size.

    The pipeline scales the 256x128 camera to short side 64 and the engine builds its graph for
    128x64 (ICNet pads to 65x129); another D builds another graph, never a resize of the first.
    """
    from dataclasses import replace

    from evs_ros.config import EvsConfig, operating_point
    from evs_ros.pipeline import EvsPipeline
    model_config = ModelConfig(device='cpu', engine=CPU_ENGINES[0], input_short_side=64,
                               refiner='')
    model, _ = load_models(model_config, False)
    config = replace(EvsConfig(), model=model_config, operating_point=operating_point('PERFRAME'))
    EvsPipeline(config, model).process(frames[0])
    assert list(model.runner.built) == ['1x3x65x129']
    half = replace(config, operating_point=replace(config.operating_point, downscale=0.5))
    EvsPipeline(half, model).process(frames[1])
    assert sorted(model.runner.built) == ['1x3x33x65', '1x3x65x129']


def test_sliding_windows_run_their_network_on_the_engine(frames, cache):
    """model.window wraps the network.

    The engine still runs the network inside (one graph per window shape), and its torch twin is
    the same windows on torch.
    """
    from evs_ros.models.graph import TorchRunner, runner_owner
    from evs_ros.models.sliding import SlidingWindowModel
    model, _ = load_models(ModelConfig(device='cpu', engine=CPU_ENGINES[0], window='64x96',
                                       input_short_side=-1, refiner=''), False)
    assert isinstance(model, SlidingWindowModel)
    runner = runner_owner(model).runner
    assert isinstance(runner, EngineRunner) and engine_name(model) == CPU_ENGINES[0]
    reference = torch_twin(model)
    assert isinstance(reference, SlidingWindowModel)
    assert isinstance(runner_owner(reference).runner, TorchRunner)
    assert runner_owner(model).runner is runner
    _check_parity(model.predict(frames[0]).probs, reference.predict(frames[0]).probs)
    assert runner.built and runner.failure is None
    for key in runner.built:  # window shapes only, padded by ICNet to 32k + 1
        height, width = (int(side) for side in key.split('x')[2:])
        assert height <= 65 and width <= 97


def test_a_static_graph_refuses_another_input_size():
    engines.check_input_shape('data', (1, 3, 65, 129), (1, 3, 65, 129), 'plan')
    engines.check_input_shape('data', (1, 3, -1, -1), (1, 3, 33, 65), 'plan')
    with pytest.raises(ValueError, match=r'built for \(1, 3, 65, 129\), got \(1, 3, 33, 65\)'):
        engines.check_input_shape('data', (1, 3, 65, 129), (1, 3, 33, 65), 'TensorRT plan')


def test_evs_export_builds_graphs_at_the_network_input_scale(cache, capsys):
    """--size is the camera frame.

    The graphs are those of the frames the pipeline gives the network: scaled to
    model.input_short_side, times each --downscale D.
    """
    from evs_ros.tools.cli import main as evs_main
    assert evs_main(['export', '--format', 'engine', '--backend', 'icnet:default', '--refiner',
                     '', '--engine', CPU_ENGINES[0], '--set', 'model.input_short_side=64',
                     '--size', '128x256', '--downscale', '1.0,0.5']) == 0
    printed = capsys.readouterr().out
    assert '1x3x65x129' in printed and '1x3x33x65' in printed and '1x3x129x257' not in printed
    assert evs_main(['export', '--format', 'engine', '--backend', 'icnet:default',
                     '--downscale', '2']) == 2
    assert '--downscale' in capsys.readouterr().err


@requires_real
def test_tflite_stays_labels_only_on_litert_whatever_the_engine(caplog, cache):
    """A tflite: network is not exportable: LiteRT runs it, labels only.

    The engine does not apply (one line, not a warning with auto), and no line claims that
    another engine runs it.
    """
    pytest.importorskip('ai_edge_litert')
    path = real_path('weights', 'deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite')
    with caplog.at_level(logging.INFO, logger='evs_ros'):
        model, refiner = load_models(ModelConfig(backend=f'tflite:{path}', device='cpu'))
    assert refiner is None and getattr(model, 'labels_only', False)
    assert engine_name(model) == 'litert'
    messages = [r.getMessage() for r in caplog.records]
    notes = [m for m in messages if 'does not apply' in m]
    assert len(notes) == 1 and 'litert runs it' in notes[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and 'does not apply' in r.getMessage()]
    assert not [m for m in messages if m.startswith('engine ')]


def test_an_onnx_file_of_fixed_size_says_once_that_frames_are_resized(tmp_path, frames, caplog,
                                                                      cache):
    """A file exported at one size cannot take the network input scale: one warning per size."""
    from evs_ros.tools.cli import main as evs_main
    path = str(tmp_path / 'icnet.onnx')
    assert evs_main(['export', '--backend', 'icnet:default', '--format', 'onnx', '--out', path,
                     '--size', '128x256']) == 0
    model, _ = load_models(ModelConfig(backend=f'onnx:{path}', refiner='',
                                       engine=CPU_ENGINES[0]), False)
    with caplog.at_level(logging.WARNING, logger='evs_ros'):
        model.predict(frames[0])  # 128x256: the file's own size
        for _ in range(2):
            model.predict(np.zeros((64, 128, 3), np.uint8))
    lines = [r.getMessage() for r in caplog.records if 'fixed input' in r.getMessage()]
    assert len(lines) == 1 and 'fixed input of 128x256' in lines[0] and '64x128' in lines[0]
