"""`test_per_image.npz`: a run's per-image test counts, and the intervals metrics.json gets
from them.

For every test image, in the split's order: its id, its intersection and union pixel counts
per class, and its counted pixels (ignored ones left out). Summed over images they are
exactly the test confusion matrix's diagonal and unions, so any dataset-level score can be
recomputed on a resample of the images (`seglab.core.significance`). Stored compressed, in
the smallest unsigned integer type that holds the counts: mostly zeros for a set with many
classes, so 5,000 images × 150 classes stay small.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.core.atomic import write_atomically
from seglab.core.significance import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Counts,
    bootstrap_intervals,
)

PER_IMAGE_FILE = "test_per_image.npz"
ARRAYS = ("ids", "class_names", "intersection", "union", "pixels")


@dataclass(frozen=True)
class PerImageCounts:
    """One test's per-image counts: `intersection` and `union` [images, classes], `pixels`
    [images], with the images' ids and the class names."""

    ids: list[str]
    class_names: list[str]
    intersection: np.ndarray
    union: np.ndarray
    pixels: np.ndarray

    @property
    def counts(self) -> Counts:
        return Counts(self.intersection, self.union, self.pixels)


def _compact(counts: np.ndarray) -> np.ndarray:
    """The counts in the smallest unsigned type that holds them."""
    largest = int(counts.max(initial=0))
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    return counts.astype(np.int64)


def write_per_image(folder: Path, scores: PerImageCounts) -> Path:
    """`<folder>/test_per_image.npz`, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, ids=np.array(scores.ids, dtype=str),
                        class_names=np.array(scores.class_names, dtype=str),
                        intersection=_compact(scores.intersection),
                        union=_compact(scores.union), pixels=_compact(scores.pixels))
    path = folder / PER_IMAGE_FILE
    write_atomically(path, buffer.getvalue())
    return path


def read_per_image(path: Path) -> PerImageCounts:
    """A `test_per_image.npz`; ValueError naming the file when it is not one."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("one array, not an archive of arrays")
        with loaded as arrays:
            found = {name: arrays[name] for name in ARRAYS if name in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not readable as an .npz file ({error})") from None
    try:
        return checked_counts(found)
    except ValueError as error:
        raise ValueError(f"{path}: not a seglab per-image file ({error})") from None


def checked_counts(loaded: dict[str, np.ndarray]) -> PerImageCounts:
    """The arrays of a per-image file, checked: ids and class names as lists of texts,
    non-negative integer counts of the right shapes, each intersection within its union."""
    missing = [name for name in ARRAYS if name not in loaded]
    if missing:
        raise ValueError(f"no {', '.join(missing)}; expected arrays {', '.join(ARRAYS)}")
    ids, class_names = loaded["ids"], loaded["class_names"]
    if ids.ndim != 1 or class_names.ndim != 1 or not len(ids) or len(set(ids.tolist())) < len(ids):
        raise ValueError(f"expected one or more distinct ids and a list of class names; got "
                         f"ids of shape {ids.shape}")
    images, classes = len(ids), len(class_names)
    for name, shape in (("intersection", (images, classes)), ("union", (images, classes)),
                        ("pixels", (images,))):
        array = loaded[name]
        if array.shape != shape or array.dtype.kind not in "ui" or (array < 0).any():
            raise ValueError(f"{name}: expected non-negative integers of shape {shape}, got "
                             f"{array.dtype} {array.shape}")
    if (loaded["intersection"] > loaded["union"]).any():
        raise ValueError("an intersection exceeds its union")
    return PerImageCounts(ids=ids.tolist(), class_names=class_names.tolist(),
                          **{name: loaded[name].astype(np.int64)
                             for name in ("intersection", "union", "pixels")})


def interval_record(scores: PerImageCounts, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> dict:
    """metrics.json's test intervals: `test/mIoU_ci95` and `test/pixel_acc_ci95` as [low, high]
    from a percentile bootstrap over the test images, and how they were drawn."""
    intervals = bootstrap_intervals(scores.counts, resamples=resamples, seed=seed)
    level = round(CONFIDENCE * 100)
    return {**{f"test/{name}_ci{level}": [low, high] for name, (low, high) in intervals.items()},
            "test/bootstrap": {"resamples": resamples, "seed": seed, "images": len(scores.ids),
                               "method": "percentile, over test images",
                               "file": PER_IMAGE_FILE}}


def keep_per_image(folder: Path, scores: PerImageCounts | None) -> dict:
    """Write a test's per-image counts into the run folder and return metrics.json's interval
    keys; nothing for a run that was not tested."""
    if scores is None:
        return {}
    write_per_image(folder, scores)
    return interval_record(scores)
