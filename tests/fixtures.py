"""Tiny datasets written in each dataset's official on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from seglab.data.palette import class_palette

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


COCO_SIZE = (20, 24)  # height, width of every COCO fixture image
# sorted ids 1, 3, 13, 18 are classes 1..4 under categories=all; 13 is not a VOC category
COCO_CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"},
                   {"id": 3, "name": "car"}, {"id": 13, "name": "stop sign"}]


def _box(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """An axis-aligned rectangle as a COCO polygon; pycocotools fills rows y0:y1, cols x0:x1."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """A 0/1 mask as COCO stores crowd regions: column-major run lengths, zeros first."""
    flat = mask.ravel(order="F")
    bounds = [0, *(np.flatnonzero(np.diff(flat)) + 1).tolist(), flat.size]
    counts = np.diff(bounds).tolist()
    return {"counts": [0, *counts] if flat[0] else counts, "size": list(mask.shape)}


def _region(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros(COCO_SIZE, dtype=np.uint8)
    mask[rows, cols] = 1
    return mask


def write_coco(root: Path) -> None:
    """COCO's layout with JSON areas equal to the pixel counts. train2017: 9 (two overlapping
    persons, a two-part dog, a stop sign over one person), 25 (an uncompressed-RLE crowd of
    persons and a car: area 100), 30 (a stop sign only: area 12), 42 (a person of area 480,
    its file missing), 49 (no annotations). val2017: 139 (a compressed-RLE crowd dog and a
    4-pixel car), 285 (no annotations)."""

    def polygons(*boxes):
        return {"segmentation": [_box(*box) for box in boxes],
                "area": sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes), "iscrowd": 0}

    def crowd(mask, compressed=False):
        rle = _uncompressed_rle(mask)
        if compressed:
            encoded = mask_utils.encode(np.asfortranarray(mask))
            rle = {"counts": encoded["counts"].decode("ascii"), "size": encoded["size"]}
        return {"segmentation": rle, "area": int(mask.sum()), "iscrowd": 1}

    parts = {
        "train2017": {9: [(1, polygons((2, 2, 10, 8))), (1, polygons((8, 6, 14, 12))),
                          (18, polygons((16, 2, 22, 6), (16, 14, 22, 18))),
                          (13, polygons((4, 10, 12, 16)))],
                      25: [(1, crowd(_region(slice(12, 18), slice(3, 9)))),
                           (3, polygons((12, 2, 20, 10)))],
                      30: [(13, polygons((0, 0, 3, 4)))], 42: [(1, polygons((0, 0, 24, 20)))],
                      49: []},
        "val2017": {139: [(18, crowd(_region(slice(4, 10), slice(4, 12)), compressed=True)),
                          (3, polygons((18, 16, 20, 18)))], 285: []},
    }
    (root / "annotations").mkdir(parents=True)
    rng = np.random.default_rng(5)
    next_id = 1
    for part, images in parts.items():
        (root / part).mkdir()
        listing = {"info": {}, "licenses": [], "categories": COCO_CATEGORIES,
                   "images": [], "annotations": []}
        for image_id, objects in images.items():
            name = f"{image_id:012d}.jpg"
            listing["images"].append({"id": image_id, "file_name": name,
                                      "height": COCO_SIZE[0], "width": COCO_SIZE[1]})
            if image_id != 42:
                _image(rng, COCO_SIZE).save(root / part / name)
            for category, annotation in objects:
                listing["annotations"].append({**annotation, "id": next_id,
                                               "image_id": image_id, "category_id": category})
                next_id += 1
        (root / "annotations" / f"instances_{part}.json").write_text(json.dumps(listing))
