"""Benchmark "significance": what the per-image test counts, their intervals and the paired
tests cost, where a user waits for them.

- the test stage of a trained run on the synthetic test split (256 scenes at 64², 4 classes):
  as seglab runs it (per-image counts on every batch, gathered, written with their bootstrap
  intervals) against the same test without them (the counting replaced by nothing);
- one test batch's confusion-matrix update with the per-image counts against without them,
  at ADE20K's scale (8 × 512², 150 classes);
- writing one run's per-image file with its intervals, and `seglab-compare` of two such runs
  (one paired test), at 5,000 images × 150 classes;
- `seglab-compare` of 10 runs × 256 images × 4 classes, with per-image files against without.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning import Trainer

from benchmarks.measure import Row, compare, interleaved, progress, single
from seglab.cli.compare import main as compare_main
from seglab.engine.builders import build_datamodule, build_module
from seglab.engine.metrics import ConfusionMatrix, per_image_counts
from seglab.runs.config import compose_config
from seglab.runs.per_image import PER_IMAGE_FILE, PerImageCounts, keep_per_image
from seglab.runs.results import write_metrics_json

NAME = "significance"
FULL = {"test_images": 256, "large_images": 5000, "large_classes": 150, "batch_side": 512,
        "runs": 10}
TOY = {"test_images": 16, "large_images": 200, "large_classes": 20, "batch_side": 64,
       "runs": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: the sizes are the issue's (--toy: tiny ones)."""


class NoCounts:
    """The test stage before per-image counts: nothing counted, nothing gathered."""

    def update(self, preds, batch) -> None:
        """Count nothing."""

    def reset(self) -> None:
        """Nothing to reset."""

    def gathered(self, trainer, class_names):
        """No counts: the run keeps no per-image file."""


def test_stage(folder: Path, images: int) -> dict:
    """The two sides of a test stage over `images` synthetic scenes with seglab's default
    network (random weights: the counting does not depend on them)."""
    cfg = compose_config("train", folder / "run", [
        f"data.lengths={{train:8,val:8,test:{images}}}", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "logger=none"])
    datamodule = build_datamodule(cfg)
    counted = build_module(cfg, datamodule.class_names, datamodule)
    bare = build_module(cfg, datamodule.class_names, datamodule)
    bare.net.load_state_dict(counted.net.state_dict())
    bare.per_image = NoCounts()

    def timed(module) -> float:
        trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                          enable_model_summary=False, enable_checkpointing=False)
        started = time.perf_counter()
        trainer.test(module, datamodule=datamodule, verbose=False)
        keep_per_image(folder, module.test_per_image)
        return time.perf_counter() - started
    return {"with per-image counts": lambda: timed(counted),
            "without": lambda: timed(bare)}


def batch_counting(side: int, classes: int) -> dict:
    """One test batch's confusion-matrix update as the test stage makes it (each image on its
    own matrix, their per-image counts derived) and as validation makes it, in seconds."""
    generator = torch.Generator().manual_seed(0)
    preds = torch.randint(0, classes, (8, side, side), generator=generator)
    target = torch.randint(0, classes + 1, (8, side, side), generator=generator)
    target[target == classes] = 255
    matrix = ConfusionMatrix(classes, 255)

    def timed(each_image) -> float:
        started = time.perf_counter()
        matrix.update(preds, target, each_image)
        return time.perf_counter() - started
    return {"with per-image counts": lambda: timed(per_image_counts),
            "matrix alone": lambda: timed(None)}


def large_counts(images: int, classes: int, seed: int) -> PerImageCounts:
    """ADE20K-like per-image counts: each 512² image shows 12 of the classes (or all, when
    fewer), a model gets 30-95% of each class's pixels right."""
    rng = np.random.default_rng(seed)
    intersection = np.zeros((images, classes), np.int64)
    union = np.zeros((images, classes), np.int64)
    present = min(12, classes)
    for image in range(images):
        shown = rng.choice(classes, present, replace=False)
        area = np.floor(rng.dirichlet(np.ones(present)) * 512 * 512).astype(np.int64)
        intersection[image, shown] = np.floor(area * rng.uniform(0.3, 0.95, present))
        union[image, shown] = area + np.floor(area * rng.uniform(0, 0.3, present))
    return PerImageCounts([f"image_{index:05d}" for index in range(images)],
                          [f"class_{index}" for index in range(classes)], intersection, union,
                          np.full(images, 512 * 512))


def write_compared_run(folder: Path, scores: PerImageCounts, keep_counts: bool) -> None:
    """A completed run folder as seglab-compare reads it, with or without its counts."""
    folder.mkdir(parents=True, exist_ok=True)
    record = keep_per_image(folder, scores) if keep_counts else {}
    write_metrics_json(folder / "metrics.json", {
        "status": "completed", "model": "unet", "encoder": "resnet18", "data": "synthetic",
        "class_names": scores.class_names, "test/mIoU": scores.counts.mean_iou(), **record})


def compare_seconds(folder: Path) -> float:
    """One seglab-compare of `folder`, its printed table swallowed, in seconds."""
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        compare_main([str(folder)])
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> list[Row]:
    """Every measurement above; the rows."""
    sizes = TOY if args.toy else FULL
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seglab-bench-significance-") as folder:
        work = Path(folder)
        images = sizes["test_images"]
        progress(f"{NAME}: test stage of {images} synthetic scenes, with and without counts")
        figures = interleaved(test_stage(work, images), args.repeats, args.warmup)
        row = compare(NAME, f"test stage, {images} scenes 64², 4 classes", "s", figures,
                      goal=1.05, higher_is_better=False)
        row.extra["seconds_added"] = row.values["with per-image counts"] - row.values["without"]
        rows.append(row)

        side, classes = sizes["batch_side"], sizes["large_classes"]
        progress(f"{NAME}: counting one batch of 8 × {side}², {classes} classes")
        figures = interleaved(batch_counting(side, classes), max(args.repeats, 5), args.warmup)
        rows.append(compare(NAME, f"confusion-matrix update with per-image counts vs alone, "
                                  f"8×{side}², {classes} classes", "s", figures,
                            higher_is_better=False))

        large = sizes["large_images"]
        progress(f"{NAME}: {large} images × {classes} classes: file, intervals, compare")
        scores = [large_counts(large, classes, seed) for seed in (0, 1)]
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            write_compared_run(work / "large" / "0", scores[0], keep_counts=True)
            seconds.append(time.perf_counter() - started)
        write_compared_run(work / "large" / "1", scores[1], keep_counts=True)
        file_mib = (work / "large" / "0" / PER_IMAGE_FILE).stat().st_size / 2**20
        rows.append(single(NAME, f"write per-image file + intervals, {large}×{classes}", "s",
                           seconds))
        rows[-1].extra["file_mib"] = round(file_mib, 3)
        rows.append(single(NAME, f"seglab-compare 2 runs × {large}×{classes}", "s",
                           [compare_seconds(work / "large") for _ in range(args.repeats)]))

        runs = sizes["runs"]
        progress(f"{NAME}: seglab-compare of {runs} runs × {images} images, with and without")
        small = [large_counts(images, 4, seed) for seed in range(runs)]
        for name, keep in (("with", True), ("without", False)):
            for index, counts in enumerate(small):
                write_compared_run(work / name / str(index), counts, keep)
        figures = interleaved({"with per-image files": lambda: compare_seconds(work / "with"),
                               "without": lambda: compare_seconds(work / "without")},
                              args.repeats, args.warmup)
        row = compare(NAME, f"seglab-compare {runs} runs × {images} images", "s", figures,
                      higher_is_better=False)
        row.extra["seconds_added"] = row.values["with per-image files"] - row.values["without"]
        rows.append(row)
        shutil.rmtree(work / "with", ignore_errors=True)
    return rows
