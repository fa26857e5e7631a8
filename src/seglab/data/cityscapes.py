"""Cityscapes (Cordts et al. 2016) fine annotations: the 19 train ids of the labelIds PNGs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from seglab.core.errors import ConfigError
from seglab.data.files import Pair
from seglab.data.layout import require, require_folders, require_root
from seglab.data.paired import PairedDataset, ValueMask

PAGE = ("https://www.cityscapes-dataset.com/ (leftImg8bit_trainvaltest.zip and "
        "gtFine_trainvaltest.zip)")
LAYOUT = ("leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and "
          "gtFine/<split>/<city>/<name>_gtFine_labelIds.png")
# (name, label id, train id) as cityscapesScripts' helpers/labels.py; train id 255 or -1: ignore
LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8),
    ("terrain", 22, 9), ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12),
    ("car", 26, 13), ("truck", 27, 14), ("bus", 28, 15), ("caravan", 29, 255),
    ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
    ("license plate", -1, -1),
]
CLASSES = [name for name, _, train_id in sorted(LABELS, key=lambda label: label[2])
           if 0 <= train_id < 255]
COLOURS = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
           (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
           (0, 80, 100), (0, 0, 230), (119, 11, 32)]  # the train ids' official colours
# label id -> train id. The license plate (-1) is never drawn into labelIds PNGs (json2labelImg
# skips negative ids); 255, what -1 would be in 8 bits, is kept as ignore like other 255s
TRAIN_IDS = {label_id: train_id if 0 <= train_id < 255 else 255
             for _, label_id, train_id in LABELS if label_id >= 0}
# The test split's labels are not public: seglab's test split is Cityscapes' val by default
SPLITS = {"train": "train", "val": "val", "test": "val"}


def _by_name(folder: Path, suffix: str) -> dict[str, Path]:
    """The `<city>/<name><suffix>` files of one split folder, by name."""
    return {path.name.removesuffix(suffix): path for path in sorted(folder.glob(f"*/*{suffix}"))}


def _pairs(root: Path, part: str) -> tuple[list[Pair], list[str]]:
    """The image/labelIds pairs of one Cityscapes split, and a problem line per orphan file."""
    image_folder = require(root / "leftImg8bit" / part, "cityscapes", LAYOUT, PAGE)
    mask_folder = require(root / "gtFine" / part, "cityscapes", LAYOUT, PAGE)
    images = _by_name(image_folder, "_leftImg8bit.png")
    masks = _by_name(mask_folder, "_gtFine_labelIds.png")
    pairs = [Pair(name, image, masks[name]) for name, image in images.items() if name in masks]
    problems = [f"{image}: no mask {name}_gtFine_labelIds.png in {mask_folder}"
                for name, image in images.items() if name not in masks]
    problems += [f"{mask}: no image {name}_leftImg8bit.png in {image_folder}"
                 for name, mask in masks.items() if name not in images]
    return pairs, problems


def cityscapes_dataset(root: str, split: str, splits: Mapping[str, str] | None = None,
                       transform: Callable[..., dict] | None = None) -> PairedDataset:
    """Cityscapes split `splits[split]` (test reads val: the test labels are not public), its
    label ids mapped to the 19 train ids, or to 255 where the official table ignores them."""
    part = {**SPLITS, **(splits or {})}[split]
    if part == "test":
        raise ConfigError(f"data.splits.{split} = test: the Cityscapes test labels are not "
                          "public (gtFine/test holds all-ignore placeholders); evaluate on val "
                          "(the default) and send test predictions to the benchmark server")
    if part not in ("train", "val"):
        raise ConfigError(f"data.splits.{split} = {part!r}: expected train or val, the "
                          "Cityscapes splits with public fine labels")
    base = require_root(root, "cityscapes", LAYOUT, PAGE)
    require_folders(base, ["leftImg8bit", "gtFine"], "Cityscapes", LAYOUT, PAGE)
    pairs, problems = _pairs(base, part)
    return PairedDataset(pairs, CLASSES, ValueMask(TRAIN_IDS), problems, transform,
                         palette=COLOURS)
