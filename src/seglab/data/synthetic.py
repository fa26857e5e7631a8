"""Procedural shape scenes: the built-in dataset that needs no download.

Each scene is drawn from (seed, split, index) alone, so any sample can be regenerated anywhere.
Objects of several shape classes get random size, rotation, colour and texture, may overlap, and
sit on a cluttered background of gradients, noise and stray lines. Colour carries no information
about the class: only shape does, so a colour threshold cannot solve the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from seglab.core.errors import ConfigError
from seglab.data.dataset import SegmentationDataset

SHAPES = ("disc", "box", "triangle", "ring", "cross")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
MIN_CONTRAST = 60.0
PLACEMENT_ATTEMPTS = 10
CACHE_LIMIT_BYTES = 1 << 30  # a split whose scenes fit in this is drawn once, then kept


def class_names_for(num_classes: int) -> list[str]:
    """Background followed by the first `num_classes - 1` shape names."""
    if not 2 <= num_classes <= len(SHAPES) + 1:
        raise ConfigError(f"data.num_classes = {num_classes}: the synthetic scenes have 2 to "
                          f"{len(SHAPES) + 1} classes (background, {', '.join(SHAPES)}); "
                          f"expected a number from 2 to {len(SHAPES) + 1}")
    return ["background", *SHAPES[: num_classes - 1]]


def split_length(lengths: object, split: str) -> int:
    """The number of scenes `lengths` (data.lengths) gives `split`; a ConfigError unless it is a
    positive integer in a mapping."""
    example = "such as 'data.lengths={train:4000,val:256,test:256}'"
    if not isinstance(lengths, Mapping):
        raise ConfigError(f"data.lengths = {lengths!r}: expected the number of scenes of each "
                          f"split, {example}")
    length = lengths.get(split)
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ConfigError(f"data.lengths = {dict(lengths)!r}: expected a positive number of "
                          f"scenes for the {split} split, {example}")
    return length


def _shape_mask(kind: str, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator,
                cy: float, cx: float, radius: float) -> np.ndarray:
    """Boolean mask of one shape centred at (cy, cx) with the given outer radius."""
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy)
    v = -np.sin(angle) * (xx - cx) + np.cos(angle) * (yy - cy)
    dist2 = (xx - cx) ** 2 + (yy - cy) ** 2
    if kind == "disc":
        return dist2 <= radius**2
    if kind == "ring":
        return (dist2 <= radius**2) & (dist2 >= (0.55 * radius) ** 2)
    if kind == "box":
        half_w = radius * 0.8
        half_h = half_w * rng.uniform(0.5, 1.0)
        return (np.abs(u) <= half_w) & (np.abs(v) <= half_h)
    if kind == "cross":
        arm = radius * 0.3
        return ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | (
            (np.abs(v) <= radius) & (np.abs(u) <= arm)
        )
    if kind == "triangle":
        corners = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        corners += rng.uniform(-0.25, 0.25, size=3)
        py = cy + radius * np.sin(corners)
        px = cx + radius * np.cos(corners)
        inside = np.ones_like(xx, dtype=bool)
        for i in range(3):
            j = (i + 1) % 3
            edge = (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
            inside &= edge >= 0
        return inside
    raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")


def _texture(shape: tuple[int, int], colour: np.ndarray, rng: np.random.Generator,
             yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """An H×W×3 float fill: solid, striped or speckled, around the base colour."""
    style = rng.choice(3, p=[0.5, 0.25, 0.25])
    fill = np.broadcast_to(colour, (*shape, 3)).astype(np.float32)
    if style == 1:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5, 12)
        phase = np.cos(angle) * xx + np.sin(angle) * yy
        stripes = (np.sin(2 * np.pi * phase / period) > 0)[..., None]
        fill = np.where(stripes, fill, fill * rng.uniform(0.4, 0.7))
    elif style == 2:
        fill = fill + rng.normal(0, 20, size=(*shape, 3))
    return fill


def _background(size: int, rng: np.random.Generator, yy: np.ndarray,
                xx: np.ndarray) -> np.ndarray:
    """A gradient between two random colours, with noise and a few stray lines."""
    start, end = rng.uniform(0, 255, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / size
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image = start + (end - start) * ramp[..., None]
    image += rng.normal(0, 12, size=image.shape)
    for _ in range(rng.integers(0, 4)):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-size / 2, size / 2)
        distance = np.cos(angle) * (xx - size / 2) + np.sin(angle) * (yy - size / 2) - offset
        image[np.abs(distance) <= rng.uniform(0.5, 1.5)] = rng.uniform(0, 255, size=3)
    return image


def draw_scene(seed: int, split: str, index: int, image_size: int = 64,
               num_classes: int = 4, max_objects: int = 3,
               max_overlap: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Draw scene `index` of `split`: an H×W×3 uint8 image and its H×W int64 class mask.

    Each object covers at most `max_overlap` of its area with objects drawn before it
    (placement is retried a few times, and the object is dropped if it never fits).
    """
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) + 0.5
    image = _background(image_size, rng, yy, xx)
    mask = np.zeros((image_size, image_size), dtype=np.int64)
    for _ in range(rng.integers(1, max_objects + 1)):
        label = int(rng.integers(1, num_classes))
        radius = rng.uniform(0.15, 0.3) * image_size
        for _attempt in range(PLACEMENT_ATTEMPTS):
            cy, cx = rng.uniform(radius * 0.5, image_size - radius * 0.5, size=2)
            inside = _shape_mask(SHAPES[label - 1], yy, xx, rng, cy, cx, radius)
            if (mask[inside] > 0).mean() <= max_overlap:
                break
        else:
            continue
        local = image[int(np.clip(cy, 0, image_size - 1)), int(np.clip(cx, 0, image_size - 1))]
        colour = rng.uniform(0, 255, size=3)
        while np.abs(colour - local).mean() < MIN_CONTRAST:
            colour = rng.uniform(0, 255, size=3)
        fill = _texture((image_size, image_size), colour, rng, yy, xx)
        image[inside] = fill[inside]
        mask[inside] = label
    return np.clip(image, 0, 255).astype(np.uint8), mask


class SyntheticShapes(SegmentationDataset):
    """One split of procedurally drawn shape scenes; `lengths` gives each split's size.

    Each scene is drawn once and kept in memory (image and uint8 mask, while the split fits in
    CACHE_LIMIT_BYTES), so from the second epoch on no training step waits on drawing. The
    cache lives in the process that loads: the main one, or each persistent loader worker.
    """

    def __init__(self, split: str, lengths: Mapping[str, int], image_size: int = 64,
                 num_classes: int = 4, max_objects: int = 3, max_overlap: float = 0.1,
                 seed: int = 0, transform: Callable[..., dict] | None = None) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
        super().__init__(transform)
        self.class_names = class_names_for(num_classes)
        self.split = split
        self.length = split_length(lengths, split)
        self.image_size = image_size
        self.num_classes = num_classes
        self.max_objects = max_objects
        self.max_overlap = max_overlap
        self.seed = seed
        scene_bytes = image_size * image_size * 4  # 3 colour bytes + 1 mask byte per pixel
        self.scenes: dict[int, tuple[np.ndarray, np.ndarray]] | None = \
            {} if self.length * scene_bytes <= CACHE_LIMIT_BYTES else None

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} {self.split} scenes")
        image, mask = self.scene(index)
        return {"image": image.copy(), "mask": mask.astype(np.int64),
                "id": f"{self.split}_{index:06d}"}

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene `index` as (image, uint8 mask): from the cache, or drawn (and cached)."""
        cached = self.scenes.get(index) if self.scenes is not None else None
        if cached is not None:
            return cached
        image, mask = draw_scene(self.seed, self.split, index, self.image_size,
                                 self.num_classes, self.max_objects, self.max_overlap)
        scene = image, mask.astype(np.uint8)
        if self.scenes is not None:
            self.scenes[index] = scene
        return scene
