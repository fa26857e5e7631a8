"""Synthetic photos for the benchmarks: a few outlined shapes over a shaded background with
sensor-like noise, so their JPEG and PNG files cost what real ones do to decode (noise keeps
them from compressing to nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VOID = 255
VOID_BORDER = 5  # pixels: VOC outlines every object with a void band about this wide
NOISE = 10.0     # standard deviation of the per-pixel noise, in grey levels


def scene(rng: np.random.Generator, height: int, width: int, labels: Sequence[int] = (1, 8, 15),
          shapes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """An H×W×3 uint8 picture and its H×W uint8 class map: `shapes` ellipses and rectangles of
    classes drawn from `labels` over background 0, each outlined by a void (255) border."""
    classes = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(classes)
    for _ in range(shapes):
        left, top = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        box = (left, top, left + int(rng.integers(width // 8, width // 2)),
               top + int(rng.integers(height // 8, height // 2)))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(box, fill=int(rng.choice(labels)), outline=VOID, width=VOID_BORDER)
    class_map = np.asarray(classes)
    colours = rng.integers(40, 216, (256, 3)).astype(np.float32)
    shading = np.linspace(-30, 30, width, dtype=np.float32)[None, :, None]
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * NOISE
    picture = np.clip(colours[class_map] + shading + noise, 0, 255).astype(np.uint8)
    return picture, class_map


def write_pictures(folder: Path, count: int, height: int, width: int,
                   seed: int = 0) -> list[Path]:
    """`count` scene pictures as JPEG files `picture_<i>.jpg` in `folder` (created); their
    paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"picture_{index:03d}.jpg" for index in range(count)]
    for path in paths:
        Image.fromarray(scene(rng, height, width)[0]).save(path, quality=90)
    return paths
