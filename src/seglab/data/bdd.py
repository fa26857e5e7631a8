"""BDD100K drivable area (Yu et al. 2020): per-pixel direct / alternative / background."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from seglab.core.errors import ConfigError
from seglab.data.files import images_in, pair_by_stem
from seglab.data.layout import require, require_root, seeded_split
from seglab.data.paired import PairedDataset, ValueMask

CLASSES = ["direct", "alternative", "background"]  # mask values 0, 1, 2
PAGE = "https://bdd-data.berkeley.edu/ (100K images and drivable-area masks)"
LAYOUT = ("bdd100k/images/100k/{train,val}/*.jpg and "
          "bdd100k/labels/drivable/masks/{train,val}/*.png")
SEED_STUDY_FRACTIONS = {"train": 0.7, "val": 0.2, "test": 0.1}


def _official(root: Path, part: str) -> tuple[list, list[str]]:
    images = require(root / "bdd100k" / "images" / "100k" / part, "bdd", LAYOUT, PAGE)
    masks = require(root / "bdd100k" / "labels" / "drivable" / "masks" / part, "bdd", LAYOUT,
                    PAGE)
    return pair_by_stem(images_in(images), {path.stem: path for path in masks.glob("*.png")})


def bdd_dataset(root: str, split: str, subset: int | None = None,
        split_fractions: Mapping[str, float] = SEED_STUDY_FRACTIONS, seed: int = 0,
        transform: Callable[..., dict] | None = None) -> PairedDataset:
    """Without `subset`: the official train and val parts (test = val). With `subset: N`: N
    pairs drawn (seeded) from train and val together, split by `split_fractions`."""
    root = require_root(root, "bdd", LAYOUT, PAGE)
    if subset is None:
        pairs, problems = _official(root, "val" if split == "test" else split)
    else:
        train, train_problems = _official(root, "train")
        val, val_problems = _official(root, "val")
        pool, problems = train + val, train_problems + val_problems
        if not 0 < subset <= len(pool):
            raise ConfigError(f"data.subset = {subset}: expected a number of pairs from 1 to "
                              f"the {len(pool)} that bdd has under {root}")
        pool = seeded_split(pool, "train", {"train": subset / len(pool),
                                            "val": 1 - subset / len(pool)}, seed)
        pairs = seeded_split(pool, split, split_fractions, seed)
    return PairedDataset(pairs, CLASSES, ValueMask(), problems, transform)
