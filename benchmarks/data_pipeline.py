"""Benchmark "data": training samples/s of seglab's `voc` DataModule against torchvision's
reference segmentation training transforms, and against a decode-only ceiling.

All sides read the same VOC-layout folder of JPEG/PNG pairs (written once per run), through
loaders with the same batch size, worker count, shuffling and last-batch handling, one epoch
per measurement, interleaved in one run. Every side decodes with Pillow.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from benchmarks.measure import Row, compare, interleaved, progress
from benchmarks.scenes import scene
from seglab.data.files import read_image, read_mask
from seglab.data.palette import class_palette
from seglab.engine.builders import build_datamodule
from seglab.runs.config import compose_config

NAME = "data"
GOAL = 1.5                       # seglab's samples/s over the reference's
PHOTO = (375, 500)               # height, width: VOC's usual landscape photo
LABELS = (1, 8, 12, 15)          # aeroplane, cat, dog, person
TOY_PAIRS = 16
# torchvision references/segmentation/train.py: SegmentationPresetTrain(base_size=520,
# crop_size=480), the shorter side resized to 0.5-2.0 × base, then a 480 crop
REFERENCE_BASE, REFERENCE_CROP = 520, 480
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

FilePair = tuple[Path, Path]
# Pillow's arrays are read-only; the loader's collation copies them anyway: noise in the table
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        category=UserWarning)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data pipeline (benchmark 'data')")
    group.add_argument("--data-pairs", type=int, default=200, metavar="N",
                       help="JPEG/PNG pairs of 500×375 written in the VOC layout "
                            f"(default: %(default)s; --toy: {TOY_PAIRS})")
    group.add_argument("--data-workers", type=int, default=2, metavar="N",
                       help="loader worker processes, the same on every side "
                            "(default: %(default)s)")


def write_voc(root: Path, count: int, seed: int = 0) -> list[FilePair]:
    """`count` scene pairs in the official VOC2012 layout under `root`: JPEGImages/<id>.jpg,
    SegmentationClass/<id>.png (palette PNG: a few classes, 255 borders) and
    ImageSets/Segmentation/{train,val,trainval}.txt with every pair in train. Their files."""
    base = root / "VOCdevkit" / "VOC2012"
    listings = base / "ImageSets" / "Segmentation"
    for folder in (base / "JPEGImages", base / "SegmentationClass", listings):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = class_palette(256).ravel().tolist()
    ids = [f"2012_{index:06d}" for index in range(count)]
    files = []
    for sample in ids:
        picture, classes = scene(rng, *PHOTO, labels=LABELS)
        image = base / "JPEGImages" / f"{sample}.jpg"
        mask = base / "SegmentationClass" / f"{sample}.png"
        Image.fromarray(picture).save(image, quality=90)
        png = Image.fromarray(classes, mode="P")
        png.putpalette(palette)
        png.save(mask)
        files.append((image, mask))
    (listings / "train.txt").write_text("\n".join(ids) + "\n")
    (listings / "val.txt").write_text("\n".join(ids[:max(1, count // 10)]) + "\n")
    (listings / "trainval.txt").write_text("\n".join(ids) + "\n")
    return files


def seglab_loader(root: Path, workers: int, overrides: Sequence[str] = ()) -> DataLoader:
    """The train loader of the `voc` DataModule built from the composed config, with the voc
    config's own training augmentation."""
    cfg = compose_config("train", root, ["data=voc", f"data.root={root}",
                                         f"data.num_workers={workers}", *overrides])
    return build_datamodule(cfg).train_dataloader()


def reference_transform(crop: int = REFERENCE_CROP, base: int = REFERENCE_BASE) -> v2.Compose:
    """torchvision's SegmentationPresetTrain (PIL backend) in transforms.v2: shorter side
    resized to 0.5-2.0 × `base`, flip, `crop` crop padded where smaller (0 for the image, 255
    for the mask; RandomCrop's padding stands in for the recipe's PadIfSmaller, same work),
    to tensor, float, ImageNet normalisation."""
    return v2.Compose([
        v2.RandomResize(int(0.5 * base), int(2.0 * base)),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Mask: 255, "others": 0}),
        v2.PILToTensor(),
        v2.ToDtype({torch.Tensor: torch.float32, tv_tensors.Mask: torch.int64, "others": None},
                   scale=True),
        v2.Normalize(MEAN, STD),
        v2.ToPureTensor(),
    ])


def reference_sample(image: Path, mask: Path, transform: v2.Compose) -> dict:
    """A pair read as torchvision's VOCSegmentation reads it (Pillow, RGB image, palette
    mask), the mask wrapped as a Mask as its transforms-v2 dataset wrapper does."""
    return transform({"image": Image.open(image).convert("RGB"),
                      "mask": tv_tensors.Mask(Image.open(mask))})


def decoded_sample(image: Path, mask: Path) -> dict:
    """Both files decoded into arrays by seglab's readers (Pillow), and nothing else."""
    return {"image": read_image(image), "mask": read_mask(mask)}


class FilePairs(Dataset):
    """The same files for every side; `load` turns one pair into a sample."""

    def __init__(self, files: Sequence[FilePair], load: Callable[[Path, Path], dict]) -> None:
        self.files, self.load = list(files), load

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return self.load(*self.files[index])


def loader_like(dataset: Dataset, like: DataLoader) -> DataLoader:
    """A shuffling loader with `like`'s batch size, workers (kept between epochs, as seglab's
    are), memory pinning and last-batch handling."""
    return DataLoader(dataset, batch_size=like.batch_size, shuffle=True, drop_last=like.drop_last,
                      num_workers=like.num_workers, persistent_workers=like.num_workers > 0,
                      pin_memory=like.pin_memory, generator=torch.Generator().manual_seed(0))


def epoch_rate(loader: DataLoader) -> Callable[[], float]:
    """A measurement: one epoch of `loader`, in samples/s (batches collated)."""
    def measure() -> float:
        started, samples = time.perf_counter(), 0
        for batch in loader:
            samples += len(batch["mask"])
        return samples / (time.perf_counter() - started)
    return measure


def like_for_like(voc: DictConfig) -> list[str]:
    """The overrides that give seglab's side the reference's work where the voc config differs:
    480 crops, and normalising in the loader workers rather than on the device."""
    overrides = []
    if tuple(voc.input_size) != (REFERENCE_CROP, REFERENCE_CROP):
        overrides.append(f"data.input_size=[{REFERENCE_CROP},{REFERENCE_CROP}]")
    if voc.get("normalize_on_device", False):
        overrides.append("data.normalize_on_device=false")
    return overrides


def measure_sides(root: Path, files: Sequence[FilePair], workers: int,
                  overrides: Sequence[str], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Samples/s of every side, interleaved: seglab as configured (and with `overrides`, the
    like-for-like side, when there are any), the reference, decode-only. The loaders'
    workers end on return."""
    seglab = seglab_loader(root, workers)
    sides = {"seglab": epoch_rate(seglab)}
    if overrides:
        sides["seglab like for like"] = epoch_rate(seglab_loader(root, workers, overrides))
    reference = FilePairs(files, partial(reference_sample, transform=reference_transform()))
    sides["reference"] = epoch_rate(loader_like(reference, seglab))
    sides["decode-only"] = epoch_rate(loader_like(FilePairs(files, decoded_sample), seglab))
    return interleaved(sides, repeats, warmup)


def describe(voc: DictConfig) -> str:
    """seglab's side in the table: its crop, and uint8 batches when it normalises on the
    device (the reference ships normalised float batches)."""
    height, width = voc.input_size
    return f"voc {height}×{width}{' uint8' if voc.get('normalize_on_device', False) else ''}"


def result_rows(figures: dict[str, list[float]], voc: DictConfig, setting: str) -> list[Row]:
    """seglab over the reference (as configured, then like for like when the voc config
    differs from the recipe; goal 1.5) and over the decode-only ceiling (no goal)."""
    seglab, reference = describe(voc), f"reference {REFERENCE_CROP}×{REFERENCE_CROP}"
    rows = [compare(NAME, f"{seglab} vs {reference}, {setting}", "samples/s",
                    {"seglab": figures["seglab"], "reference": figures["reference"]}, GOAL)]
    if "seglab like for like" in figures:
        rows.append(compare(NAME, f"voc {REFERENCE_CROP}×{REFERENCE_CROP} normalised in workers "
                            f"vs {reference}, {setting}", "samples/s",
                            {"seglab": figures["seglab like for like"],
                             "reference": figures["reference"]}, GOAL))
    rows.append(compare(NAME, f"{seglab} vs decode-only (Pillow, both files), {setting}",
                        "samples/s", {"seglab": figures["seglab"],
                                      "decode-only": figures["decode-only"]}))
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    """Write the pairs into a temporary VOC folder, measure every side, return the rows."""
    count = TOY_PAIRS if args.toy else args.data_pairs
    with tempfile.TemporaryDirectory(prefix="seglab-bench-voc-") as folder:
        root = Path(folder)
        progress(f"{NAME}: writing {count} VOC pairs, then one epoch per side and measurement")
        files = write_voc(root, count)
        voc = compose_config("train", root, ["data=voc", f"data.root={root}"]).data
        figures = measure_sides(root, files, args.data_workers, like_for_like(voc),
                                args.repeats, args.warmup)
    setting = (f"{count} pairs {PHOTO[1]}×{PHOTO[0]}, {args.data_workers} workers, "
               f"batch {voc.batch_size}")
    return result_rows(figures, voc, setting)
