"""Inference engines: which one runs a network's graph, at which precision, and their sessions.

A network is a checkpoint; how it runs is an engine (``model.engine``, design §4):

- ``torch``: torch eager, the reference; CPU or CUDA (fp16 on CUDA).
- ``openvino``: OpenVINO on the CPU (x86-64 and ARM64); fp32, fp16 / bf16 where the CPU has that
  arithmetic, int8 after NNCF post-training quantisation (``evs_ros/models/quantize.py``).
- ``onnxruntime``: ONNX Runtime; its CPU provider (and CUDA with ``onnxruntime-gpu``); fp32.
- ``tensorrt``: TensorRT on an NVIDIA GPU; fp32 or fp16.

``auto`` picks OpenVINO on a CPU (else ONNX Runtime, else torch) and, on an NVIDIA GPU, TensorRT
when it is importable, else torch CUDA (:func:`choose_engine`). A requested precision the engine
cannot run is refused with one line and the engine runs fp32 (:func:`choose_precision`).

Sessions (:func:`open_session`) run one exported ONNX graph at one input shape and thread count:
torch tensors in, torch tensors out, so the model wrappers keep their own pre- and
post-processing (``evs_ros/models/graph.py``).
"""

import importlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

LOGGER = logging.getLogger('evs_ros')
ENGINE_MODULES = {'torch': 'torch', 'openvino': 'openvino', 'onnxruntime': 'onnxruntime',
                  'tensorrt': 'tensorrt'}
ENGINE_DEVICES = {'torch': ('cpu', 'cuda'), 'openvino': ('cpu',),
                  'onnxruntime': ('cpu', 'cuda'), 'tensorrt': ('cuda',)}
INSTALL_HINT = {'openvino': 'pip install openvino', 'onnxruntime': 'pip install onnxruntime',
                'tensorrt': 'pip install tensorrt (NVIDIA GPUs)', 'nncf': 'pip install nncf'}
OPENVINO_PRECISION = {'fp32': 'f32', 'fp16': 'f16', 'bf16': 'bf16'}


def engine_version(engine: str) -> Optional[str]:
    """Return the installed version of ``engine``'s package, None when it cannot be imported."""
    try:
        module = importlib.import_module(ENGINE_MODULES.get(engine, engine))
    except Exception:  # noqa: B902 - missing or broken: not installed
        return None
    version = str(getattr(module, '__version__', 'unknown'))
    return version.split('-')[0]  # openvino: '2026.4.1-22982-<hash>-releases/2026/4'


def engine_versions() -> Dict[str, Optional[str]]:
    """``{engine: version or None}`` of every engine (and NNCF), for benchmark JSON."""
    versions = {name: engine_version(name) for name in ENGINE_MODULES}
    versions['nncf'] = engine_version('nncf')
    return versions


def choose_engine(requested: str, device_type: str) -> Tuple[str, str]:
    """(engine, why) for ``model.engine`` on ``device_type`` ('cpu' or 'cuda').

    Raises:
        ImportError: an explicitly requested engine is not installed (names the pip command).
        ValueError: it does not run on that device.
    """
    if requested == 'auto':
        if device_type == 'cuda':
            if engine_version('tensorrt') and engine_version('onnx'):
                return 'tensorrt', 'auto: NVIDIA GPU and TensorRT is installed'
            return 'torch', 'auto: NVIDIA GPU, TensorRT is not installed: torch CUDA'
        if not engine_version('onnx'):
            return 'torch', ('auto: CPU, but the onnx package that exports graphs is not '
                             'installed (pip install onnx): torch')
        for engine in ('openvino', 'onnxruntime'):
            if engine_version(engine):
                return engine, (f'auto: CPU, {engine} is the fastest engine installed'
                                if engine == 'openvino' else
                                'auto: CPU, OpenVINO is not installed: onnxruntime')
        return 'torch', 'auto: CPU, neither OpenVINO nor ONNX Runtime is installed: torch'
    if requested not in ENGINE_MODULES:
        raise ValueError(f'model.engine={requested!r}: must be auto or one of '
                         f'{", ".join(ENGINE_MODULES)}')
    if device_type not in ENGINE_DEVICES[requested]:
        where = 'set model.device=cpu' if device_type == 'cuda' else 'it needs an NVIDIA GPU'
        raise ValueError(f'model.engine={requested} does not run on the {device_type.upper()} '
                         f'({where}, or model.engine=auto)')
    if requested != 'torch' and not engine_version(requested):
        raise ImportError(f'model.engine={requested}: {requested} is not installed '
                          f'({INSTALL_HINT[requested]}, or model.engine=auto)')
    if requested == 'onnxruntime' and device_type == 'cuda' and not _onnxruntime_cuda():
        raise ImportError('model.engine=onnxruntime on the GPU: this onnxruntime has no CUDA '
                          'provider (pip install onnxruntime-gpu, or model.device=cpu)')
    return requested, 'model.engine'


def _onnxruntime_cuda() -> bool:
    import onnxruntime
    return 'CUDAExecutionProvider' in onnxruntime.get_available_providers()


def choose_precision(engine: str, precision: str, device_type: str) -> Tuple[str, Optional[str]]:
    """(precision the engine runs, one line when ``precision`` is refused or changed, else None).

    ``precision`` is ``model.precision`` with ``auto`` resolved (fp32, fp16, bf16 or int8).
    """
    if precision == 'fp32':
        return 'fp32', None
    refused = f'model.precision {precision} is refused by {engine}'
    if engine == 'torch':
        if device_type == 'cuda' and precision == 'fp16':
            return 'fp16', None
        why = ('torch eager has no fast 16-bit arithmetic on the CPU'
               if device_type == 'cpu' and precision != 'int8' else
               'int8 needs model.engine=openvino' if precision == 'int8' else
               'torch CUDA runs fp16 or fp32')
        return 'fp32', f'{refused} ({why}): it runs fp32'
    if engine == 'openvino':
        return _openvino_precision(precision)
    if engine == 'tensorrt' and precision == 'fp16':
        return 'fp16', None
    why = {'onnxruntime': 'its CPU provider runs fp32 graphs',
           'tensorrt': 'TensorRT runs fp16 or fp32 here'}.get(engine, 'not supported')
    return 'fp32', f'{refused} ({why}): it runs fp32'


def _openvino_precision(precision: str) -> Tuple[str, Optional[str]]:
    capabilities = openvino_cpu_capabilities()
    if precision == 'int8':
        if not engine_version('nncf'):
            return 'fp32', ('model.precision int8 needs NNCF for the quantisation '
                            f'({INSTALL_HINT["nncf"]}): it runs fp32')
        return 'int8', None
    if precision == 'fp16':
        if 'FP16' in capabilities:
            return 'fp16', None
        if 'BF16' in capabilities:
            return 'bf16', ('model.fp16 on this CPU runs bfloat16 (openvino: the CPU has '
                            'bf16 but no fp16 arithmetic)')
    if precision == 'bf16' and 'BF16' in capabilities:
        return 'bf16', None
    return 'fp32', (f'model.precision {precision} is refused by openvino (this CPU has no '
                    f'{precision} arithmetic: {", ".join(capabilities)}): it runs fp32')


_OPENVINO = {}
_OPENVINO_LOCK = threading.Lock()


def openvino_core():
    """Return the process's one ``openvino.Core`` (creating one costs time and memory)."""
    with _OPENVINO_LOCK:
        if 'core' not in _OPENVINO:
            import openvino
            _OPENVINO['core'] = openvino.Core()
        return _OPENVINO['core']


def openvino_cpu_capabilities() -> Tuple[str, ...]:
    """Return the CPU plugin's OPTIMIZATION_CAPABILITIES (FP32, BF16, FP16, INT8, ...)."""
    try:
        return tuple(openvino_core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))
    except Exception:  # noqa: B902 - no OpenVINO CPU plugin: no capability
        return ()


@dataclass(frozen=True)
class SessionSpec:
    """What one session runs: an ONNX (or OpenVINO) graph at fixed input shapes.

    Attributes:
        engine: openvino, onnxruntime or tensorrt.
        graph_path: the ONNX file (an OpenVINO ``.xml`` for int8).
        input_names / output_names: the graph's tensor names, in the order the model passes
            and reads them.
        threads: intra-op threads (CPU engines).
        precision: fp32, fp16, bf16 or int8 (from :func:`choose_precision`).
        device_type: 'cpu' or 'cuda'.
        plan_path: TensorRT only: where the built engine plan is cached.
        input_shapes: the shapes of the inputs the session serves (TensorRT builds a graph with
            dynamic axes for exactly these; other engines do not need them).
    """

    engine: str
    graph_path: str
    input_names: Tuple[str, ...]
    output_names: Tuple[str, ...]
    threads: int
    precision: str
    device_type: str = 'cpu'
    plan_path: str = ''
    input_shapes: Tuple[Tuple[int, ...], ...] = ()


def open_session(spec: SessionSpec):
    """Return a session for ``spec``: ``run(list of torch tensors) -> list of torch tensors``."""
    if spec.engine == 'openvino':
        return OpenVinoSession(spec)
    if spec.engine == 'onnxruntime':
        return OnnxRuntimeSession(spec)
    if spec.engine == 'tensorrt':
        return TensorRtSession(spec)
    raise ValueError(f'no session for engine {spec.engine!r}')


def _as_numpy(tensor) -> np.ndarray:
    """Return a CPU float32 contiguous numpy view of a torch tensor (or array)."""
    if hasattr(tensor, 'detach'):
        tensor = tensor.detach()
        if tensor.device.type != 'cpu':
            tensor = tensor.cpu()
        tensor = tensor.float().contiguous().numpy()
    return np.ascontiguousarray(tensor, dtype=np.float32)


def _as_torch(arrays: Sequence[np.ndarray]) -> List:
    import torch
    return [torch.from_numpy(np.ascontiguousarray(array)) for array in arrays]


class OpenVinoSession:
    """One compiled OpenVINO model.

    CPU plugin, latency hint, no CPU pinning so that it shares the cores with the flow workers.
    """

    def __init__(self, spec: SessionSpec):
        core = openvino_core()
        model = core.read_model(spec.graph_path)
        properties = {'INFERENCE_NUM_THREADS': int(spec.threads),
                      'PERFORMANCE_HINT': 'LATENCY', 'ENABLE_CPU_PINNING': False,
                      'NUM_STREAMS': 1}
        if spec.precision in OPENVINO_PRECISION:
            properties['INFERENCE_PRECISION_HINT'] = OPENVINO_PRECISION[spec.precision]
        self.compiled = core.compile_model(model, 'CPU', properties)
        self.request = self.compiled.create_infer_request()
        self.outputs = self.compiled.outputs
        self._lock = threading.Lock()

    def run(self, inputs) -> List:
        arrays = {index: _as_numpy(tensor) for index, tensor in enumerate(inputs)}
        with self._lock:
            results = self.request.infer(arrays, share_inputs=True)
            return _as_torch([results[output] for output in self.outputs])


class OnnxRuntimeSession:
    """One ONNX Runtime session (CPU provider; CUDA first with onnxruntime-gpu on a GPU).

    Its threads do not spin while idle, so that they leave the flow workers their cores.
    """

    def __init__(self, spec: SessionSpec):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(spec.threads)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        providers = ['CPUExecutionProvider']
        if (spec.device_type == 'cuda'
                and 'CUDAExecutionProvider' in onnxruntime.get_available_providers()):
            providers.insert(0, 'CUDAExecutionProvider')
        self.session = onnxruntime.InferenceSession(spec.graph_path, options,
                                                    providers=providers)
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.output_names = [item.name for item in self.session.get_outputs()]

    def run(self, inputs) -> List:
        feed = {name: _as_numpy(tensor) for name, tensor in zip(self.input_names, inputs)}
        return _as_torch(self.session.run(self.output_names, feed))


class TensorRtSession:
    """A TensorRT engine built from the ONNX graph, run on torch CUDA tensors.

    The plan is cached at ``spec.plan_path``; it runs on the current stream. Written against the
    TensorRT 10 Python API; CI never has TensorRT (``scripts/device_check.sh`` runs it where a GPU
    and TensorRT are).
    """

    def __init__(self, spec: SessionSpec):
        import tensorrt as trt
        from evs_ros.models.engine_cache import atomic_path
        self.trt = trt
        logger = trt.Logger(trt.Logger.WARNING)
        if not os.path.isfile(spec.plan_path):
            plan = _build_tensorrt_plan(trt, logger, spec)
            with atomic_path(spec.plan_path) as temporary:
                with open(temporary, 'wb') as stream:
                    stream.write(plan)
        with open(spec.plan_path, 'rb') as stream:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(stream.read())
        if self.engine is None:
            raise RuntimeError(f'TensorRT cannot read its plan {spec.plan_path}')
        self.context = self.engine.create_execution_context()
        self.input_names, self.output_names = spec.input_names, spec.output_names
        self.input_shapes = tuple(tuple(self.engine.get_tensor_shape(name))
                                  for name in self.input_names)

    def run(self, inputs) -> List:
        import torch
        stream = torch.cuda.current_stream()
        # Kept referenced until the engine ran: a converted copy must outlive the call.
        tensors = [torch.as_tensor(tensor).to('cuda', torch.float32).contiguous()
                   for tensor in inputs]
        for name, built, tensor in zip(self.input_names, self.input_shapes, tensors):
            check_input_shape(name, built, tuple(tensor.shape), 'TensorRT plan')
            if any(dim < 0 for dim in built):
                self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, int(tensor.data_ptr()))
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            output = torch.empty(shape, dtype=torch.float32, device='cuda')
            self.context.set_tensor_address(name, int(output.data_ptr()))
            outputs.append(output)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError('TensorRT execution failed')
        return outputs


def check_input_shape(name: str, built: Sequence[int], given: Sequence[int], what: str) -> None:
    """Refuse an input of another shape than the graph was built for.

    ``built`` may hold -1 (or None) for a dynamic dimension. A static graph fed another size
    would read the wrong memory (TensorRT) or be resized silently: a network's input scale
    (``model.input_short_side``) must reach it as it is, so a new size needs its own graph.

    Raises:
        ValueError: naming the tensor, both shapes and what was built.
    """
    if len(built) != len(given) or any(
            dim is not None and dim >= 0 and dim != size for dim, size in zip(built, given)):
        raise ValueError(f'{what}: input {name} was built for {tuple(built)}, got '
                         f'{tuple(given)} (a new input size needs its own graph)')


def _build_tensorrt_plan(trt, logger, spec: SessionSpec) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(spec.graph_path):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'TensorRT cannot parse {spec.graph_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    dynamic = [network.get_input(index) for index in range(network.num_inputs)
               if any(dim < 0 for dim in network.get_input(index).shape)]
    if dynamic:  # one profile fixed at the shapes this plan serves
        if len(spec.input_shapes) != network.num_inputs:
            raise ValueError(f'{spec.graph_path} has dynamic inputs: TensorRT needs the input '
                             'shapes to build for')
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor, shape = network.get_input(index), tuple(spec.input_shapes[index])
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    if spec.precision == 'fp16':
        config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f'TensorRT could not build an engine from {spec.graph_path}')
    return bytes(plan)
