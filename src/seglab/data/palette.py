"""Class colours: the palette a mask is drawn with, by data, plots and predictions alike."""

from __future__ import annotations

import numpy as np

IGNORE_COLOUR = (255, 255, 255)


def class_palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour palette extended to `num_classes` colours ([C, 3] uint8)."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for label in range(num_classes):
        value, bit = label, 7
        while value:
            for channel in range(3):
                palette[label, channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
    return palette


def colorize(mask: np.ndarray, palette: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """An H×W class mask as an H×W×3 RGB image; ignored pixels are white."""
    rgb = palette[np.clip(mask, 0, len(palette) - 1)]
    rgb[mask == ignore_index] = IGNORE_COLOUR
    return rgb
