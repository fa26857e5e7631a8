"""Datasets read in their published layouts, behind one sample contract; see `build_dataset`."""

from __future__ import annotations

from collections.abc import Callable

from seglab.data.ade20k import ade20k_dataset
from seglab.data.bdd import bdd_dataset
from seglab.data.camvid import camvid_dataset
from seglab.data.cityscapes import cityscapes_dataset
from seglab.data.coco import coco_dataset
from seglab.data.dataset import SegmentationDataset
from seglab.data.folder import folder_dataset
from seglab.data.kitti_road import kitti_road_dataset
from seglab.data.pets import pets_dataset
from seglab.data.synthetic import SyntheticShapes
from seglab.data.voc import voc_dataset


def _synthetic(root: str | None, split: str, **options) -> SegmentationDataset:
    return SyntheticShapes(split, **options)


DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "voc": voc_dataset, "coco": coco_dataset, "pets": pets_dataset, "bdd": bdd_dataset,
    "kitti_road": kitti_road_dataset, "art": folder_dataset, "folder": folder_dataset,
    "cityscapes": cityscapes_dataset, "ade20k": ade20k_dataset, "camvid": camvid_dataset,
    "synthetic": _synthetic,
}


def build_dataset(name: str, root: str | None, split: str,
                  transform: Callable[..., dict] | None = None, **options) -> SegmentationDataset:
    """Split `split` of dataset `name` under `root`, for notebooks and scripts: items are dicts
    with `image` (H×W×3 uint8 RGB), `mask` (H×W int64, 255 = ignore) and `id` (file stem)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name](root=root, split=split, transform=transform, **options)


__all__ = ["DATASETS", "SegmentationDataset", "build_dataset"]
