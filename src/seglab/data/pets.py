"""The Oxford-IIIT Pet dataset's trimaps (Parkhi et al. 2012)."""

from __future__ import annotations

from collections.abc import Callable

from torchvision.datasets import OxfordIIITPet

from seglab.core.errors import ConfigError
from seglab.data.files import Pair
from seglab.data.layout import download_with, require, require_root, seeded_split
from seglab.data.paired import PairedDataset, ValueMask

PAGE = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
LAYOUT = ("images/*.jpg, annotations/trimaps/*.png, annotations/{trainval,test}.txt "
          "(optionally inside oxford-iiit-pet/, as torchvision's OxfordIIITPet downloads it)")
# trimap values: 1 pet, 2 background, 3 border
TRIMAP = {"trimap": ({2: 0, 1: 1, 3: 2}, ["background", "pet", "border"]),
          "binary": ({2: 0, 1: 1}, ["background", "pet"])}


def pets_dataset(root: str, split: str, mode: str = "trimap", border: str = "pet",
         val_fraction: float = 0.1, seed: int = 0, download: bool = False,
         transform: Callable[..., dict] | None = None) -> PairedDataset:
    """`train`/`val` are a seeded split of trainval.txt (`val_fraction` to val), `test` is
    test.txt. `mode: binary` maps the border to pet or, with `border: ignore`, to 255."""
    if mode not in TRIMAP or border not in ("pet", "ignore"):
        raise ConfigError(f"data.mode = {mode!r}, data.border = {border!r}: expected mode "
                          "trimap or binary, and border pet or ignore")
    base = require_root(root, "pets", LAYOUT, PAGE, download)
    if download:
        download_with("Oxford-IIIT Pet", lambda: OxfordIIITPet(
            str(base), target_types="segmentation", download=True), base)
    if (base / "oxford-iiit-pet").is_dir():
        base = base / "oxford-iiit-pet"
    listing = require(base / "annotations" / ("test.txt" if split == "test" else "trainval.txt"),
                      "pets", LAYOUT, PAGE, downloadable=True)
    samples = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    if split != "test":
        samples = seeded_split(samples, split, {"train": 1 - val_fraction, "val": val_fraction},
                               seed)
    mapping, classes = TRIMAP[mode]
    if mode == "binary":
        mapping = {**mapping, 3: 1 if border == "pet" else 255}
    pairs, problems = [], []
    for sample in samples:
        image = base / "images" / f"{sample}.jpg"
        mask = base / "annotations" / "trimaps" / f"{sample}.png"
        missing = [path for path in (image, mask) if not path.is_file()]
        problems += [f"{path}: listed in {listing.name} but missing" for path in missing]
        if not missing:
            pairs.append(Pair(sample, image, mask))
    return PairedDataset(pairs, classes, ValueMask(mapping), problems, transform)
