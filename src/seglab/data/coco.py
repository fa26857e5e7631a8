"""COCO 2017 instance annotations read as semantic masks, the way torchvision's segmentation
references make them (references/segmentation/coco_utils.py in pytorch/vision)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from seglab.data.files import DataError, Pair, read_image
from seglab.data.layout import require, require_root
from seglab.data.paired import PairedDataset
from seglab.data.voc import CLASSES as VOC_CLASSES

PAGE = "https://cocodataset.org/#download"
LAYOUT = ("annotations/instances_<set>.json and <set>/*.jpg, for <set> = train2017 and val2017 "
          "(the 2017 images and the 2017 train/val annotations archives)")
# COCO has no public test annotations: seglab's test split is val2017 unless told otherwise
IMAGE_SETS = {"train": "train2017", "val": "val2017", "test": "val2017"}
# the COCO category id of each VOC class (0: background), torchvision's CAT_LIST
VOC_CATEGORY_IDS = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]
CATEGORIES = ("all", "voc")
OVERLAP = 255  # pixels covered by two or more kept instances are ignored

Instances = list[tuple[int, object]]  # (class index, COCO segmentation) of one image


def read_annotations(path: Path) -> COCO:
    """The annotation file indexed by pycocotools, without its progress prints; a file that is
    not COCO JSON is a DataError naming it."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, AssertionError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a COCO annotation file ({type(error).__name__}: "
                        f"{error})") from None


def category_labels(coco: COCO, categories: str) -> tuple[dict[int, int], list[str]]:
    """COCO category id → class index, and the class names (background first): `all` numbers
    the file's categories 1.. in id order, `voc` keeps torchvision's 20 VOC categories."""
    if categories == "voc":
        return {cat: label for label, cat in enumerate(VOC_CATEGORY_IDS) if label}, VOC_CLASSES
    ids = sorted(coco.getCatIds())
    names = [category["name"] for category in coco.loadCats(ids)]
    return {cat: label for label, cat in enumerate(ids, start=1)}, ["background", *names]


def instance_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """One instance's H×W 0/1 mask from its polygons, or from its RLE (a crowd region, with
    uncompressed or compressed counts), decoded by pycocotools."""
    if isinstance(segmentation, list):  # polygons, one per visible part
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):  # uncompressed, as COCO stores crowds
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(np.int64)


def semantic_mask(instances: Instances, height: int, width: int) -> np.ndarray:
    """The instances merged as torchvision does: each pixel takes the largest class index
    covering it, 0 where none does, 255 where two or more instances overlap."""
    target = np.zeros((height, width), dtype=np.int64)
    covered = np.zeros((height, width), dtype=np.int64)
    for label, segmentation in instances:
        mask = instance_mask(segmentation, height, width)
        np.maximum(target, mask * label, out=target)
        covered += mask
    target[covered > 1] = OVERLAP
    return target


class CocoDataset(PairedDataset):
    """COCO images, each paired with its annotation file; `load` decodes the image's kept
    instances into its semantic mask only when the sample is read."""

    def __init__(self, pairs: Sequence[Pair], class_names: Sequence[str],
                 instances: Mapping[str, tuple[int, int, Instances]], problems: Sequence[str],
                 transform: Callable[..., dict] | None = None) -> None:
        # masks are drawn from the annotations, not decoded from mask files
        super().__init__(pairs, class_names, None, problems, transform)
        self.instances = instances

    def load(self, index: int) -> dict:
        pair = self.pairs[index]
        image = read_image(pair.image)
        height, width, instances = self.instances[pair.id]
        if image.shape[:2] != (height, width):
            raise DataError(f"{pair.image}: image is {image.shape[0]}×{image.shape[1]} but "
                            f"{pair.mask.name} gives it {height}×{width}")
        return {"image": image, "mask": semantic_mask(instances, height, width), "id": pair.id}


def _list_images(coco: COCO, labels: dict[int, int], folder: Path, listing: Path,
                 min_area: float | None) -> tuple[list[Pair], dict, list[str]]:
    """Pairs, kept instances per id and missing-file problems, in image id order; with
    `min_area`, images whose kept annotations cover no more than that are dropped."""
    pairs, instances, problems = [], {}, []
    for info in coco.loadImgs(sorted(coco.getImgIds())):
        kept = [annotation for annotation in coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
                if annotation["category_id"] in labels]
        if min_area is not None and not (kept and sum(a["area"] for a in kept) > min_area):
            continue
        image = folder / info["file_name"]
        if not image.is_file():
            problems.append(f"{image}: listed in {listing.name} but missing")
            continue
        pairs.append(Pair(image.stem, image, listing))
        instances[image.stem] = (info["height"], info["width"], [
            (labels[a["category_id"]], a["segmentation"]) for a in kept])
    return pairs, instances, problems


def coco_dataset(root: str, split: str, categories: str = "all",
                 image_sets: Mapping[str, str] | None = None, min_annotated_area: float = 1000,
                 num_classes: int | None = None,
                 transform: Callable[..., dict] | None = None) -> CocoDataset:
    """COCO `split` (mapped to train2017/val2017 by `image_sets`) with the classes of
    `categories`; the train split drops images annotated over `min_annotated_area` or less.
    `num_classes`, when given, must match the classes `categories` gives."""
    if categories not in CATEGORIES:
        raise DataError(f"coco: data.categories must be one of {', '.join(CATEGORIES)}, "
                        f"got {categories!r}")
    image_set = (image_sets or IMAGE_SETS)[split]
    root = require_root(root, "coco", LAYOUT, PAGE)
    listing = require(root / "annotations" / f"instances_{image_set}.json", "coco",
                      LAYOUT, PAGE)
    folder = require(root / image_set, "coco", LAYOUT, PAGE)
    coco = read_annotations(listing)
    labels, class_names = category_labels(coco, categories)
    if num_classes is not None and num_classes != len(class_names):
        raise DataError(f"{listing}: data.categories={categories} gives {len(class_names)} "
                        f"classes (background + {len(class_names) - 1} categories) but "
                        f"data.num_classes is {num_classes}; set data.num_classes="
                        f"{len(class_names)}")
    try:
        pairs, instances, problems = _list_images(
            coco, labels, folder, listing, min_annotated_area if split == "train" else None)
    except KeyError as key:
        raise DataError(f"{listing}: an image or annotation lacks the key {key}") from None
    return CocoDataset(pairs, class_names, instances, problems, transform)
