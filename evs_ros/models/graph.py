"""The part of a network an engine runs, and the runners that run it (design §4, Engines).

Every torch-based model wrapper (ICNet, the ``hf:`` families, the Refiner, ESPNetv2) is three
things: its input preparation (``prepare``: a frame -> padded, normalised tensors), a **graph**
(a ``torch.nn.Module`` from those tensors to output tensors, e.g. :class:`ProbsAndFeatures`) and
its post-processing (crop, class order, numpy). The wrapper calls ``self.runner(*tensors)``; an
engine replaces only that call:

- :class:`TorchRunner` runs the graph in torch eager (the reference, the default of a wrapper);
- :class:`EngineRunner` exports the graph to ONNX on first use of an input shape, caches it
  (``evs_ros/models/engine_cache.py``: keyed by the weights' hash, the shape, the exporter and,
  for what an engine builds, its version and the precision), and runs it on OpenVINO, ONNX
  Runtime or TensorRT (``evs_ros/models/engines.py``). Graphs are static per input shape
  (faster than dynamic shapes on these engines: docs/benchmarks.md section 13); a new
  resolution or D builds (or reuses from the cache) the graph of its shape.

Where a new shape's graph is built: synchronously in the calling thread by default (offline
tools: their warm-up frames build it); with ``background`` set (the node, after its warm-up) in
a background thread while torch runs those frames, so no camera frame ever waits for an export.
:func:`warm_up` opens the most recently used cached graphs first. A graph that cannot be exported
or compiled runs on torch with one line saying why.
"""

import copy
import logging
import os
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from evs_ros.errors import one_line
from evs_ros.models import engine_cache, engines

LOGGER = logging.getLogger('evs_ros')
ONNX_OPSET = 17
RECENT_SHAPES = 3
"""Cached shapes :func:`warm_up` opens (most recently used first)."""


class ProbsAndFeatures(nn.Module):
    """The graph of a network whose ``forward(data)`` returns ``{'logits', 'features'}``.

    ICNet, ESPNetv2: ``data`` (N, 3, Hp, Wp) -> ``probs`` (softmax over C, float32) and
    ``features`` (float32), both uncropped.
    """

    input_names = ('data',)
    output_names = ('probs', 'features')

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, data: torch.Tensor):
        out = self.network(data)
        return torch.softmax(out['logits'].float(), dim=1), out['features'].float()


class ScriptGraph(nn.Module):
    """A TorchScript file's module as a graph: ``image`` -> ``probs`` (+ ``features``)."""

    input_names = ('image',)

    def __init__(self, script: nn.Module):
        super().__init__()
        self.script = script
        self.output_names = ('probs', 'features')

    def forward(self, image: torch.Tensor):
        return self.script(image)


def _as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


class TorchRunner:
    """Runs a graph module in torch eager (no autograd): the reference engine."""

    engine = 'torch'
    precision = 'fp32'

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, *inputs: torch.Tensor) -> tuple:
        with torch.inference_mode():
            return _as_tuple(self.module(*inputs))


class EngineRunner:
    """Runs a graph module on ``engine`` (openvino, onnxruntime, tensorrt).

    One static graph per input shape (or one dynamic graph, ``dynamic``, for modules with
    ``dynamic_axes``).

    Args:
        module: the graph (``input_names`` / ``output_names`` attributes name its tensors).
        graph_name: the cache folder's prefix (``icnet``, ``refiner``, ``hf-segformer``, ...).
        engine, precision: from :func:`~evs_ros.models.engines.choose_engine` /
            :func:`~evs_ros.models.engines.choose_precision`.
        device_type: 'cpu' or 'cuda' (TensorRT; ONNX Runtime with onnxruntime-gpu).
        dynamic: one graph with dynamic height and width for every shape (measurement only).
        calibration: precision int8: ``calibration(shapes) -> list of input tuples`` (the
            user's frames prepared at those shapes, ``evs_ros/models/quantize.py``).
        cache_root: the engines folder (default ``$XDG_CACHE_HOME/evs_ros/engines``).

    Attributes:
        background: build a new shape's graph in a background thread (torch meanwhile).
        failure: why the engine could not run the graph (it then runs on torch), else None.
        built: ``{shape key: seconds it took (export + compile)}`` of this process's builds.
    """

    def __init__(self, module: nn.Module, graph_name: str, engine: str, precision: str = 'fp32',
                 device_type: str = 'cpu', dynamic: bool = False,
                 calibration: Optional[Callable] = None, cache_root: str = ''):
        self.module = module
        self.torch = TorchRunner(module)
        self.graph_name = graph_name
        self.engine, self.precision, self.device_type = engine, precision, device_type
        self.dynamic = bool(dynamic and getattr(module, 'dynamic_axes', None))
        self.calibration = calibration
        self.cache_root = cache_root
        self.background = False
        self.failure: Optional[str] = None
        self.built: Dict[str, float] = {}
        self._sessions: Dict[tuple, object] = {}
        self._building = set()
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()  # guards _building
        self._build_lock = threading.Lock()  # one export/compile at a time
        self._folder: Optional[str] = None

    @property
    def folder(self) -> str:
        """Return where this graph's cache entries live (hashes the weights on first use)."""
        if self._folder is None:
            digest = engine_cache.state_hash(self.module)
            self._folder = engine_cache.graph_dir(self.graph_name, digest, self.cache_root)
        return self._folder

    def __call__(self, *inputs: torch.Tensor) -> tuple:
        if self.failure is not None:
            return self.torch(*inputs)
        shapes = [tuple(tensor.shape) for tensor in inputs]
        key = self._key(shapes)
        session = self._sessions.get(key) or self._obtain(key, shapes)
        if session is None:
            return self.torch(*inputs)
        return tuple(session.run(inputs))

    def _key(self, shapes) -> tuple:
        threads = 0 if self.engine == 'tensorrt' else torch.get_num_threads()
        return ('dynamic' if self.dynamic else engine_cache.shape_key(shapes), threads)

    def _obtain(self, key: tuple, shapes) -> Optional[object]:
        if not self.background:
            return self._obtain_now(key, shapes)
        with self._lock:
            if key in self._building or key in self._sessions:
                return self._sessions.get(key)
            self._building.add(key)
        LOGGER.info('%s: no %s graph for %s yet: building it in the background; torch runs '
                    'these frames meanwhile', self.graph_name, self.engine, key[0])
        # Not a daemon (explicitly: a thread started by the daemon inference worker would
        # inherit daemon=True): at exit the interpreter waits for a build in progress, as a
        # native export or compile killed mid-way aborts the process.
        thread = threading.Thread(target=self._build_in_background, args=(key, shapes),
                                  name='evs-engine-build', daemon=False)
        self._threads.append(thread)
        thread.start()
        return None

    def wait_for_builds(self, timeout_s: float = 60.0) -> bool:
        """Wait for the background builds in progress; False if one is still running."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        return not self._threads

    def _obtain_now(self, key: tuple, shapes) -> Optional[object]:
        with self._build_lock:
            return self._sessions.get(key) or self._build(key, shapes)

    def _build_in_background(self, key: tuple, shapes) -> None:
        torch.set_num_threads(max(1, key[1]))
        session = self._obtain_now(key, shapes)
        with self._lock:
            self._building.discard(key)
        if session is not None:
            LOGGER.info('%s: %s graph for %s ready (%.1f s)', self.graph_name, self.engine,
                        key[0], self.built.get(key[0], 0.0))

    def _build(self, key: tuple, shapes) -> Optional[object]:
        """Export (or reuse) the ONNX graph, open the engine's session; None after a failure."""
        if key in self._sessions:
            return self._sessions[key]
        if self.failure is not None:
            return None
        start = time.perf_counter()
        try:
            graph_path = self.export(shapes)
            if self.precision == 'int8':
                graph_path = self._quantized(graph_path, shapes)
            session = engines.open_session(engines.SessionSpec(
                self.engine, graph_path, tuple(self.module.input_names),
                tuple(self.module.output_names), max(1, key[1]), self.precision,
                self.device_type, self._plan_path(shapes),
                tuple(tuple(int(dim) for dim in shape) for shape in shapes)))
        except Exception as error:  # noqa: B902 - any exporter/engine failure: torch runs it
            self.failure = one_line(error)
            LOGGER.warning('%s: %s cannot run this graph (%s): it runs on torch', self.graph_name,
                           self.engine, self.failure)
            return None
        self.built[key[0]] = round(time.perf_counter() - start, 2)
        self._sessions[key] = session
        return session

    def onnx_path(self, shapes) -> str:
        """Where the ONNX export of ``shapes`` is cached."""
        version = torch.__version__.replace('+', '-')
        name = 'dynamic' if self.dynamic else engine_cache.shape_key(shapes)
        return os.path.join(self.folder, f'{name}-torch{version}-opset{ONNX_OPSET}.onnx')

    def _plan_path(self, shapes) -> str:
        if self.engine != 'tensorrt':
            return ''
        gpu = torch.cuda.get_device_name(0).replace(' ', '_') if torch.cuda.is_available() else ''
        return os.path.join(self.folder, f'{engine_cache.shape_key(shapes)}-tensorrt'
                            f'{engines.engine_version("tensorrt")}-{self.precision}-{gpu}.plan')

    def export(self, shapes) -> str:
        """Return the cached ONNX file of ``shapes``, exported now (atomically) when missing."""
        path = self.onnx_path(shapes)
        if os.path.isfile(path):
            engine_cache.touch(path)
            return path
        module = _export_copy(self.module)
        example = tuple(torch.zeros(shape) for shape in shapes)
        dynamic_axes = getattr(self.module, 'dynamic_axes', None) if self.dynamic else None
        with engine_cache.atomic_path(path) as temporary, warnings.catch_warnings(), \
                torch.no_grad():
            warnings.simplefilter('ignore')  # tracer warnings: sizes baked in, as intended
            torch.onnx.export(module, example, temporary,
                              input_names=list(self.module.input_names),
                              output_names=list(self.module.output_names),
                              opset_version=ONNX_OPSET, dynamo=False, do_constant_folding=True,
                              dynamic_axes=dynamic_axes)
        return path

    def _quantized(self, onnx_path: str, shapes) -> str:
        from evs_ros.models.quantize import quantized_model
        if self.calibration is None:
            raise ValueError('precision int8 needs calibration frames (model.calibration)')
        return quantized_model(onnx_path, shapes, self.calibration)

    def cached_shapes(self, limit: int = RECENT_SHAPES) -> List[List[Tuple[int, ...]]]:
        """Input shapes whose graphs are cached, most recently used first."""
        suffix = os.path.basename(self.onnx_path([(1,)])).split('-', 1)[1]
        shapes = []
        for name in engine_cache.recent_entries(self.folder, '-' + suffix, limit):
            try:
                shapes.append(engine_cache.parse_shape_key(name.split('-', 1)[0]))
            except ValueError:
                continue
        return shapes

    def warm_up(self, limit: int = RECENT_SHAPES) -> List[str]:
        """Open and run once the ``limit`` most recently used cached graphs.

        In this thread's torch threads, the ones the inference worker uses; returns their shape
        keys.
        """
        warmed = []
        for shapes in ([] if self.dynamic else self.cached_shapes(limit)):
            key = self._key(shapes)
            session = self._obtain_now(key, shapes)
            if session is None:
                break
            session.run([torch.zeros(shape) for shape in shapes])
            warmed.append(key[0])
        return warmed


def _export_copy(module: nn.Module) -> nn.Module:
    """Return ``module`` itself when it is on the CPU in float32, else a CPU float32 copy.

    The exported graph is float32; engines choose their own precision.
    """
    tensors = list(module.parameters()) + list(module.buffers())
    if all(t.device.type == 'cpu' and t.dtype in (torch.float32, torch.int64, torch.bool)
           for t in tensors):
        return module.eval()
    return copy.deepcopy(module).to('cpu').float().eval()


def use_engine(model, engine: str, precision: str = 'fp32', device_type: str = 'cpu',
               calibration: Optional[Callable] = None, dynamic: bool = False) -> bool:
    """Run ``model``'s graph on ``engine``.

    Its :class:`TorchRunner` becomes an :class:`EngineRunner` (same module); ``engine`` 'torch'
    puts the torch runner back. False for a model without a torch graph (nothing changes). A
    wrapper (sliding windows) hands its network to the engine: the runner is the network's,
    whatever wraps it.
    """
    model = runner_owner(model)
    runner = getattr(model, 'runner', None)
    torch_runner = runner.torch if isinstance(runner, EngineRunner) else runner
    if not isinstance(torch_runner, TorchRunner):
        return False
    if engine == 'torch':
        model.runner = torch_runner
        return True
    model.runner = EngineRunner(torch_runner.module, model.graph_name, engine, precision,
                                device_type, dynamic, calibration)
    return True


def engine_runners(*models) -> List[EngineRunner]:
    """Return the :class:`EngineRunner` of each model that has one."""
    return [model.runner for model in models
            if model is not None and isinstance(getattr(model, 'runner', None), EngineRunner)]


def engine_name(model) -> str:
    """Return the engine that runs ``model`` now: ``torch`` (the reference), ``openvino``, ....

    ``torch (fallback)`` after an export failure; models without a runner report their own
    ``engine`` attribute (``onnx:`` files), else ``python``.
    """
    runner = getattr(model, 'runner', None)
    if isinstance(runner, EngineRunner):
        return f'{runner.engine} (failed: torch)' if runner.failure else runner.engine
    if runner is not None:
        return 'torch'
    return str(getattr(model, 'engine', 'python'))


def torch_twin(model):
    """Return a shallow copy of ``model`` that runs on torch eager (shares its network).

    The per-frame torch reference of the benchmarks. ``model`` itself when it has no engine.
    """
    owner = runner_owner(model)
    runner = getattr(owner, 'runner', None)
    if not isinstance(runner, EngineRunner):
        return model
    twin = copy.copy(model)
    if owner is model:
        twin.runner = runner.torch
    else:  # a wrapper: the same wrapper around the network's torch twin
        twin.model = torch_twin(model.model)
    return twin


def runner_owner(model):
    """Return the object whose ``runner`` runs the graph.

    ``model`` itself, or the network a :class:`~evs_ros.models.sliding.SlidingWindowModel`
    wraps (the wrapper reads every attribute it lacks from its network, but a ``runner``
    assigned to the wrapper would never reach the network).
    """
    from evs_ros.models.sliding import SlidingWindowModel
    while isinstance(model, SlidingWindowModel):
        model = model.model
    return model


def set_background_builds(models: Sequence, enabled: bool = True) -> None:
    """Build new shapes' graphs in the background (torch meanwhile) from now on."""
    for runner in engine_runners(*models):
        runner.background = enabled


def warm_up(model, refiner=None, size_hw: Tuple[int, int] = (256, 512),
            threads: Optional[int] = None) -> List[str]:
    """Return the node's warm-up, before any camera frame.

    Open (and run once) the most recently used cached engine graphs of ``model`` and ``refiner``
    with ``threads`` torch threads (those of the inference worker), run the torch reference once on
    a gray ``size_hw`` frame (what runs a new shape until its graph is built), then switch to
    background builds. Returns the graphs opened, as ``'<graph> <shape>'``.
    """
    import numpy as np
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        opened = [f'{runner.graph_name} {key}' for runner in engine_runners(model, refiner)
                  for key in runner.warm_up()]
        image = np.full(tuple(size_hw) + (3,), 127, np.uint8)
        prediction = torch_twin(model).predict(image)
        if refiner is not None:
            torch_twin(refiner).refine(image, np.asarray(prediction.probs, np.float32),
                                       prediction.features)
    finally:
        torch.set_num_threads(previous)
    set_background_builds([model, refiner])
    return opened
