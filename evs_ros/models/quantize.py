"""INT8 post-training quantisation of a keyframe network with OpenVINO's NNCF.

Opt-in: ``model.precision: int8``, ``model.engine: openvino``.

The user names the frames to calibrate on (``model.calibration``): a video file, a ROS 2 bag
directory (its first image topic) or a folder of images (searched recursively). Up to
:data:`CALIBRATION_FRAMES` frames, spread evenly over the source, are resized to each graph's
input shape, prepared exactly as the network's own frames (``model.prepare``) and fed to
``nncf.quantize`` (default preset: symmetric weights and activations, per-channel weights). The
int8 model is cached next to its ONNX graph (``evs_ros/models/engine_cache.py``), keyed by the
OpenVINO and NNCF versions and by the calibration source (path, size and modification time), and
written atomically like every entry. The Refiner stays in floating point (its calibration would
need the network's warped outputs). docs/benchmarks.md section 13 measures speed and mIoU.
"""

import hashlib
import logging
import os
from typing import Callable, List, Sequence, Tuple

import numpy as np

from evs_ros.models import engine_cache

LOGGER = logging.getLogger('evs_ros')
CALIBRATION_FRAMES = 64
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm')


def calibration_frames(source: str, limit: int = CALIBRATION_FRAMES) -> List[np.ndarray]:
    """Up to ``limit`` BGR uint8 frames spread evenly over ``source`` (video, bag, folder).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: it holds no readable frame.
    """
    if not os.path.exists(source):
        raise FileNotFoundError(f'model.calibration {source!r} does not exist (a video, a ROS 2 '
                                'bag or a folder of images)')
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, 'metadata.yaml')):
        frames = _bag_frames(source)
    elif os.path.isdir(source):
        frames = _folder_frames(source, limit)
    else:
        from evs_ros.data.video import iter_video
        frames = list(iter_video(source))
    if not frames:
        raise ValueError(f'model.calibration {source!r} holds no readable frame')
    picks = np.linspace(0, len(frames) - 1, min(limit, len(frames))).round().astype(int)
    return [frames[index] for index in sorted(set(picks.tolist()))]


def _folder_frames(folder: str, limit: int) -> List[np.ndarray]:
    import cv2
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                   for name in names if name.lower().endswith(IMAGE_SUFFIXES))
    picks = np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(int)
    frames = [cv2.imread(paths[index], cv2.IMREAD_COLOR) for index in sorted(set(picks))]
    return [frame for frame in frames if frame is not None]


def _bag_frames(path: str) -> List[np.ndarray]:
    from evs_ros.data.image_messages import compressed_msg_to_bgr, image_msg_to_bgr
    from evs_ros.data.rosbag_io import BagReader, deserialize
    converters = {'sensor_msgs/msg/Image': image_msg_to_bgr,
                  'sensor_msgs/msg/CompressedImage': compressed_msg_to_bgr}
    frames, topic = [], None
    with BagReader(path) as reader:
        for connection, _, rawdata in reader.messages():
            convert = converters.get(connection.msgtype)
            if convert is None or topic not in (None, connection.topic):
                continue
            topic = connection.topic
            frames.append(convert(deserialize(rawdata, connection.msgtype)))
    return frames


def source_key(source: str) -> str:
    """16 hex digits identifying the calibration source (path, sizes, modification times)."""
    digest = hashlib.sha256(os.path.abspath(source).encode())
    paths = ([os.path.join(root, name) for root, _, names in os.walk(source) for name in names]
             if os.path.isdir(source) else [source])
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f'{path}:{stat.st_size}:{int(stat.st_mtime)};'.encode())
    return digest.hexdigest()[:16]


def calibration_source(model, source: str) -> Callable:
    """``calibration(shapes) -> list of input tuples``.

    The user's frames resized to the graph's input (N=1) shape and prepared by ``model.prepare``;
    ``.key`` names the source.
    """
    import cv2
    frames = calibration_frames(source)

    def calibration(shapes: Sequence[Tuple[int, ...]]) -> list:
        height, width = int(shapes[0][-2]), int(shapes[0][-1])
        inputs = []
        for frame in frames:
            resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            prepared = model.prepare(resized)
            if tuple(prepared.shape) != tuple(shapes[0]):
                raise ValueError(f'calibration frames prepare to {tuple(prepared.shape)}, '
                                 f'not {tuple(shapes[0])}')
            inputs.append((prepared.float().cpu().numpy(),))
        return inputs

    calibration.key = source_key(source)
    calibration.frames = len(frames)
    return calibration


def quantized_model(onnx_path: str, shapes, calibration: Callable) -> str:
    """Return the OpenVINO int8 model (``.xml``) quantised from ``onnx_path``.

    Calibrated on ``calibration``'s frames at ``shapes``; cached (atomically) next to the ONNX
    file.
    """
    import nncf
    import openvino
    from evs_ros.models.engines import engine_version, openvino_core
    stem = onnx_path[:-len('.onnx')]
    folder = (f'{stem}-openvino{engine_version("openvino")}-int8-nncf{nncf.__version__}-'
              f'{getattr(calibration, "key", "calibration")}')
    model_xml = os.path.join(folder, 'model.xml')
    if os.path.isfile(model_xml):
        engine_cache.touch(folder)
        return model_xml
    inputs = calibration(shapes)
    LOGGER.info('int8: quantising %s on %d calibration frames (NNCF %s)',
                os.path.basename(onnx_path), len(inputs), nncf.__version__)
    model = openvino_core().read_model(onnx_path)
    dataset = nncf.Dataset(inputs, lambda item: item[0])
    quantized = nncf.quantize(model, dataset, subset_size=len(inputs))
    with engine_cache.atomic_path(folder) as temporary:
        os.makedirs(temporary)
        openvino.save_model(quantized, os.path.join(temporary, 'model.xml'),
                            compress_to_fp16=False)
    return model_xml
