"""Finding data problems before training: every sample of every split is read once, and the
result is cached by file size and modification time so later runs only re-read what changed."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import track

from seglab.core.atomic import write_atomically
from seglab.data.dataset import SegmentationDataset
from seglab.data.files import DataError
from seglab.data.paired import PairedDataset


@dataclass
class SplitReport:
    """What scanning one split found."""

    split: str
    count: int = 0
    heights: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    class_pixels: np.ndarray | None = None
    # per class: all pixels of the images in which the class appears (for frequency balancing)
    present_pixels: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)
    bad_ids: set[str] = field(default_factory=set)


def cache_dir() -> Path:
    return Path(os.environ.get("SEGLAB_CACHE_DIR", Path.home() / ".cache" / "seglab"))


def _signature(*paths: Path) -> list[int]:
    stats = [path.stat() for path in paths]
    return [value for stat in stats for value in (stat.st_size, stat.st_mtime_ns)]


def _scan_sample(dataset: SegmentationDataset, index: int, num_classes: int,
                 ignore_index: int) -> dict:
    """One sample's size, class pixel counts, and problem (None when fine)."""
    try:
        sample = dataset.load(index)
    except DataError as error:
        return {"problem": str(error)}
    mask = sample["mask"]
    values = np.unique(mask)
    outside = [int(v) for v in values if v != ignore_index and not 0 <= v < num_classes]
    where = dataset.pairs[index].mask if isinstance(dataset, PairedDataset) else sample["id"]
    problem = (f"{where}: mask values {outside} outside the classes 0..{num_classes - 1} "
               f"(and {ignore_index} = ignore)") if outside else None
    kept = mask[(mask >= 0) & (mask < num_classes)]
    return {"problem": problem, "size": list(mask.shape[:2]),
            "counts": np.bincount(kept.ravel(), minlength=num_classes).tolist()}


def check_split(dataset: SegmentationDataset, split: str, num_classes: int,
                ignore_index: int = 255, cache_key: str | None = None,
                progress: bool = True) -> SplitReport:
    """Read every sample of `dataset` and report sizes, class pixel counts and problems."""
    report = SplitReport(split, len(dataset), class_pixels=np.zeros(num_classes, np.int64),
                         present_pixels=np.zeros(num_classes, np.int64))
    report.problems += list(getattr(dataset, "problems", []))
    cache_file = None
    cache: dict = {}
    if cache_key is not None and isinstance(dataset, PairedDataset):
        digest = hashlib.sha1(cache_key.encode()).hexdigest()[:16]
        cache_file = cache_dir() / "checks" / f"{digest}.json"
        if cache_file.is_file():
            cache = json.loads(cache_file.read_text())
    indices = range(len(dataset))
    if progress:
        indices = track(indices, description=f"checking {split}", transient=True)
    for index in indices:
        entry = None
        if isinstance(dataset, PairedDataset):
            pair = dataset.pairs[index]
            signature = _signature(pair.image, pair.mask)
            entry = cache.get(str(pair.image))
            if entry is None or entry["signature"] != signature:
                entry = {**_scan_sample(dataset, index, num_classes, ignore_index),
                         "signature": signature}
                cache[str(pair.image)] = entry
            sample_id = pair.id
        else:
            entry = _scan_sample(dataset, index, num_classes, ignore_index)
            sample_id = str(index)
        if entry["problem"]:
            report.problems.append(entry["problem"])
            report.bad_ids.add(sample_id)
        if "size" in entry:
            report.heights.append(entry["size"][0])
            report.widths.append(entry["size"][1])
            counts = np.asarray(entry["counts"], dtype=np.int64)
            report.class_pixels += counts
            report.present_pixels += np.where(counts > 0, counts.sum(), 0)
    if report.count == 0:
        report.problems.append(f"split {split!r} is empty")
    if cache_file is not None:
        write_atomically(cache_file, json.dumps(cache))  # DDP processes check at once
    return report


def median_frequency_weights(report: SplitReport) -> list[float]:
    """Median frequency balancing (Eigen & Fergus 2015): a class's frequency is its pixels over
    the pixels of the images it appears in; its weight is the median frequency over its own.
    A class that never appears gets weight 0."""
    present = report.present_pixels > 0
    if not present.any():
        raise ValueError(f"no labelled pixels in split {report.split!r}: cannot weight classes")
    frequency = np.where(present, report.class_pixels / np.maximum(report.present_pixels, 1), 0)
    median = float(np.median(frequency[present]))
    return [median / f if f > 0 else 0.0 for f in frequency.tolist()]
