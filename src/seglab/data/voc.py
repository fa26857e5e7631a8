"""PASCAL VOC 2007/2012 segmentation, read from the extracted VOCdevkit."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torchvision.datasets import VOCSegmentation

from seglab.data.files import Pair
from seglab.data.layout import download_with, require, require_root
from seglab.data.paired import PairedDataset, ValueMask

CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
           "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
           "sheep", "sofa", "train", "tvmonitor"]
PAGE = "http://host.robots.ox.ac.uk/pascal/VOC/"
LAYOUT = ("VOCdevkit/VOC<year>/{JPEGImages/*.jpg, SegmentationClass/*.png, "
          "ImageSets/Segmentation/<set>.txt} (as torchvision's VOCSegmentation downloads it)")
# VOC publishes no test masks: seglab's test split is VOC's val set unless told otherwise
IMAGE_SETS = {"train": "train", "val": "val", "test": "val"}


def voc_dataset(root: str, split: str, year: str = "2012",
        image_sets: Mapping[str, str] | None = None, download: bool = False,
        transform: Callable[..., dict] | None = None) -> PairedDataset:
    """VOC `split` (mapped to an image-set file by `image_sets`); masks keep 255 as ignore."""
    image_set = (image_sets or IMAGE_SETS)[split]
    root = require_root(root, "voc", LAYOUT, PAGE, download)
    if download:
        download_with(f"PASCAL VOC {year}", lambda: VOCSegmentation(
            str(root), year=str(year), image_set=image_set, download=True), root)
    base = root / "VOCdevkit" / f"VOC{year}"
    listing = require(base / "ImageSets" / "Segmentation" / f"{image_set}.txt", "voc", LAYOUT,
                      PAGE, downloadable=True)
    pairs, problems = [], []
    for sample in listing.read_text().split():
        image = base / "JPEGImages" / f"{sample}.jpg"
        mask = base / "SegmentationClass" / f"{sample}.png"
        missing = [path for path in (image, mask) if not path.is_file()]
        problems += [f"{path}: listed in {listing.name} but missing" for path in missing]
        if not missing:
            pairs.append(Pair(sample, image, mask))
    return PairedDataset(pairs, CLASSES, ValueMask(), problems, transform)
