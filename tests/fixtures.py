"""Tiny datasets written in each dataset's official on-disk layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.viz import class_palette

SIZE = (40, 52)  # height, width


def _image(rng, size=SIZE) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def _labels(rng, values, size=SIZE) -> np.ndarray:
    """Blocky label maps (4×4 cells) so every value appears in most files."""
    cells = rng.choice(values, size=(size[0] // 4 + 1, size[1] // 4 + 1))
    return np.kron(cells, np.ones((4, 4), dtype=cells.dtype))[:size[0], :size[1]]


def write_voc(root: Path, count: int = 8, year: str = "2012") -> list[str]:
    base = root / "VOCdevkit" / f"VOC{year}"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"2007_{i:06d}" for i in range(count)]
    palette = class_palette(256).ravel().tolist()
    for sample in ids:
        _image(rng).save(base / "JPEGImages" / f"{sample}.jpg")
        mask = _labels(rng, [0, 1, 5, 15, 20]).astype(np.uint8)
        mask[::7, :] = 255  # void boundaries
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette)
        png.save(base / "SegmentationClass" / f"{sample}.png")
    half = count // 2
    (base / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:half]) + "\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[half:]) + "\n")
    (base / "ImageSets/Segmentation/trainval.txt").write_text("\n".join(ids) + "\n")
    return ids


def write_pets(root: Path, trainval: int = 10, test: int = 4) -> Path:
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = {"trainval": [f"Abyssinian_{i}" for i in range(1, trainval + 1)],
             "test": [f"beagle_{i}" for i in range(1, test + 1)]}
    for listing, ids in names.items():
        lines = []
        for sample in ids:
            _image(rng).save(base / "images" / f"{sample}.jpg")
            trimap = _labels(rng, [1, 2, 3]).astype(np.uint8)
            Image.fromarray(trimap, mode="L").save(base / "annotations/trimaps" / f"{sample}.png")
            species = 1 if sample.startswith("Aby") else 2
            lines.append(f"{sample} {species} {species} 1")
        (base / "annotations" / f"{listing}.txt").write_text("\n".join(lines) + "\n")
    return base


def write_bdd(root: Path, train: int = 7, val: int = 3) -> None:
    rng = np.random.default_rng(2)
    for part, count in (("train", train), ("val", val)):
        images = root / "bdd100k/images/100k" / part
        masks = root / "bdd100k/labels/drivable/masks" / part
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for i in range(count):
            stem = f"{part}{i:04d}-0a1b2c3d"
            _image(rng).save(images / f"{stem}.jpg")
            Image.fromarray(_labels(rng, [0, 1, 2]).astype(np.uint8), mode="L").save(
                masks / f"{stem}.png")


KITTI_COLOURS = {0: (255, 0, 0), 1: (255, 0, 255), 255: (0, 0, 0)}


def write_kitti_road(root: Path, count: int = 8) -> dict[str, np.ndarray]:
    images = root / "training/image_2"
    masks = root / "training/gt_image_2"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(3)
    expected = {}
    for i in range(count):
        category = ("um", "umm", "uu")[i % 3]
        _image(rng).save(images / f"{category}_{i:06d}.png")
        labels = _labels(rng, [0, 1, 255])
        colours = np.zeros((*labels.shape, 3), dtype=np.uint8)
        for label, colour in KITTI_COLOURS.items():
            colours[labels == label] = colour
        Image.fromarray(colours).save(masks / f"{category}_road_{i:06d}.png")
        if category == "um":  # lane masks exist too and are not road masks
            Image.fromarray(colours[..., ::-1].copy()).save(masks / f"um_lane_{i:06d}.png")
        expected[f"{category}_{i:06d}"] = labels
    return expected


ART_COLOURS = [[0, 0, 0], [220, 20, 60], [255, 165, 0], [128, 128, 128], [34, 139, 34],
               [135, 206, 235], [0, 0, 205]]


def write_folder(root: Path, count: int = 10, colours: list | None = None,
                 classes: int = 2) -> dict[str, np.ndarray]:
    """images/*.jpg with masks/*.png: RGB colour masks when `colours`, else class indices."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(4)
    expected = {}
    for i in range(count):
        stem = f"painting_{i:03d}"
        _image(rng).save(root / "images" / f"{stem}.jpg")
        labels = _labels(rng, list(range(len(colours) if colours else classes)))
        if colours:
            Image.fromarray(np.asarray(colours, dtype=np.uint8)[labels]).save(
                root / "masks" / f"{stem}.png")
        else:
            Image.fromarray(labels.astype(np.uint8), mode="L").save(root / "masks" / f"{stem}.png")
        expected[stem] = labels
    return expected
