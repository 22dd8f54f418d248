"""What a frame must be before a stream takes it (design §4).

A uint8 BGR image no smaller than the network's stride.

The networks downsample their input by up to :data:`NETWORK_STRIDE_PX` (ICNet's 1/32 branch,
SegFormer's last stage, the UperNet and Mask2Former backbones): a frame with a side under that
covers less than one cell of the network's coarsest grid, and DIS cannot compute flow on it (it
fails under 12 px with the paper's patch size). Such frames are refused with
:class:`FrameRejected` instead of failing inside the network or the flow. A network object may
state its own stride with a ``stride_px`` attribute.
"""

import numpy as np

NETWORK_STRIDE_PX = 32
"""Coarsest downsampling of the networks evs_ros runs; the smallest frame side accepted."""


class FrameRejected(ValueError):
    """A frame the pipeline cannot process; ``cause`` names the kind (one log line per kind)."""

    def __init__(self, text: str, cause: str):
        super().__init__(text)
        self.cause = cause


def min_frame_side_px(model) -> int:
    """Return the smallest frame side ``model`` is given: its ``stride_px``, else the default."""
    return int(getattr(model, 'stride_px', NETWORK_STRIDE_PX))


def check_frame(image_bgr: np.ndarray, min_side_px: int) -> None:
    """Raise :class:`FrameRejected` unless ``image_bgr`` is uint8 (H, W, 3) and big enough.

    ``min_side_px``: the smallest side accepted (:func:`min_frame_side_px`).
    """
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise FrameRejected(f'frame must be uint8 (H, W, 3) BGR, got {image_bgr.dtype} '
                            f'{image_bgr.shape}', 'format')
    height, width = image_bgr.shape[:2]
    if min(height, width) < min_side_px:
        raise FrameRejected(
            f"frame {width}x{height} is smaller than the network's stride: frames need at least "
            f"{min_side_px} px on each side (resize upstream, e.g. image_proc's resize)",
            'too_small')
