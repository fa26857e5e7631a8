"""KITTI road (Fritsch et al. 2013): road vs not road, from the training part's colour masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from seglab.data.files import images_in, pair_by_stem
from seglab.data.layout import require, require_root, seeded_split
from seglab.data.paired import ColourMask, PairedDataset

CLASSES = ["not_road", "road"]
COLOURS = [(255, 0, 0), (255, 0, 255)]  # red: not road, magenta: road; black: invalid
PAGE = "https://www.cvlibs.net/datasets/kitti/eval_road.php (base kit with training labels)"
LAYOUT = "training/image_2/<cat>_<n>.png and training/gt_image_2/<cat>_road_<n>.png"


def kitti_road_dataset(root: str, split: str,
               split_fractions: Mapping[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15},
               seed: int = 0, transform: Callable[..., dict] | None = None) -> PairedDataset:
    """Only the training part has masks, so all three splits are a seeded split of it."""
    root = require_root(root, "kitti_road", LAYOUT, PAGE)
    images = require(root / "training" / "image_2", "kitti_road", LAYOUT, PAGE)
    masks = require(root / "training" / "gt_image_2", "kitti_road", LAYOUT, PAGE)
    road_masks = {path.stem.replace("_road_", "_"): path
                  for path in masks.glob("*_road_*.png")}
    pairs, problems = pair_by_stem(images_in(images), road_masks)
    return PairedDataset(seeded_split(pairs, split, split_fractions, seed), CLASSES,
                         ColourMask(COLOURS, ignore_colours=[(0, 0, 0)]), problems, transform,
                         palette=COLOURS)
