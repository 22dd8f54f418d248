"""Colour labels and overlays for people: rviz topics, overlay videos, contact sheets."""

from dataclasses import dataclass

import cv2
import numpy as np

from evs_ros.config import EvsConfig


def labels_module():
    """evs_ros.data.labels (imported lazily: the palette tables are only needed here)."""
    from evs_ros.data import labels
    return labels


@dataclass
class Visualizer:
    """Turns trainId labels into colours with a palette lookup table.

    Attributes:
        lut_rgb: uint8 (256, 3) colour of every label value; unknown values and 255 are black.
        alpha: weight of the colours in overlays, in [0, 1].
    """

    lut_rgb: np.ndarray
    alpha: float = 0.5

    @classmethod
    def from_palette(cls, colors_rgb, alpha: float = 0.5) -> 'Visualizer':
        return cls(labels_module().palette_lut(colors_rgb), alpha)

    @classmethod
    def from_config(cls, config: EvsConfig) -> 'Visualizer':
        labels = labels_module()
        if config.model.palette_file:
            _, colors = labels.load_palette(config.model.palette_file)
        else:
            colors = labels.PALETTE_RGB
        return cls.from_palette(colors, config.publish.overlay_alpha)

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """uint8 (H, W) labels -> uint8 (H, W, 3) RGB."""
        return labels_module().colorize(labels, self.lut_rgb)

    def overlay(self, image_bgr: np.ndarray, colors_rgb: np.ndarray) -> np.ndarray:
        """Blend the colours over the camera image: uint8 (H, W, 3) BGR + RGB -> RGB."""
        image_rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        if colors_rgb.shape[:2] != image_rgb.shape[:2]:
            colors_rgb = cv2.resize(colors_rgb, image_rgb.shape[1::-1],
                                    interpolation=cv2.INTER_NEAREST)
        return cv2.addWeighted(image_rgb, 1.0 - self.alpha, colors_rgb, self.alpha, 0.0)
