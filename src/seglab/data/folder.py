"""Any `images/` + `masks/` tree: users' own data, and the art-paintings studies."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from seglab.core.errors import ConfigError
from seglab.data.files import images_in, pair_by_stem
from seglab.data.layout import require, require_root, seeded_split
from seglab.data.paired import ColourMask, PairedDataset, ValueMask

LAYOUT = ("images/* and masks/*.png paired by file stem, or images/{train,val,test}/ and "
          "masks/{train,val,test}/ when the split is already made")


def folder_dataset(root: str, split: str, class_names: Sequence[str],
           colours: Sequence[Sequence[int]] | None = None,
           split_fractions: Mapping[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15},
           seed: int = 0, ignore_index: int = 255, name: str = "folder",
           transform: Callable[..., dict] | None = None) -> PairedDataset:
    """Masks are class-index PNGs, or RGB PNGs when `colours` (one per class) are given.
    Split folders are used when `images/<split>` exists, else a seeded split by fractions."""
    root = require_root(root, name, LAYOUT, "your own data")
    images = require(root / "images", name, LAYOUT, "your own data")
    masks = require(root / "masks", name, LAYOUT, "your own data")
    presplit = (images / split).is_dir()
    if presplit:
        images, masks = images / split, require(masks / split, name, LAYOUT, "your own data")
    pairs, problems = pair_by_stem(images_in(images),
                                   {path.stem: path for path in images_in(masks)})
    if not presplit:
        pairs = seeded_split(pairs, split, split_fractions, seed)
    if colours is not None and len(colours) != len(class_names):
        raise ConfigError(f"data.colours: {len(colours)} colours for {len(class_names)} "
                          "classes; expected one [r, g, b] per class of data.class_names")
    decode = ColourMask(colours, ignore_index) if colours else ValueMask()
    return PairedDataset(pairs, class_names, decode, problems, transform, palette=colours)
