"""Confidence intervals and paired tests for segmentation scores, from per-image counts.

A test set is N images' [N, C] intersection and union pixel counts and [N] counted pixels.
Scores are computed from counts summed over images (as the accumulated confusion matrix of
`seglab.engine.metrics` gives them), so every resample recomputes them from resampled sums:
a bootstrap resample is a row of per-image draw counts and its sums one matrix product.
NumPy only: `seglab-compare` imports this and must not import torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
_CHUNK_BYTES = 32 * 2**20  # bound on one chunk's [resamples, images] float64 matrix
_TIE_TOLERANCE = 100 * np.finfo(np.float64).eps  # scipy.stats.permutation_test's relative gamma


@dataclass(frozen=True, eq=False)
class Counts:
    """One test set's per-image counts, stored as float64: intersection and union [N, C]
    (ignored pixels excluded) and pixels [N], the counted pixels of each image."""

    intersection: np.ndarray
    union: np.ndarray
    pixels: np.ndarray

    def __post_init__(self) -> None:
        for name in ("intersection", "union", "pixels"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        shapes = (f"intersection {self.intersection.shape}, union {self.union.shape}, "
                  f"pixels {self.pixels.shape}")
        if (self.intersection.ndim != 2 or self.union.shape != self.intersection.shape
                or self.pixels.shape != self.intersection.shape[:1]):
            raise ValueError(f"per-image counts need shapes [N, C], [N, C] and [N]; got {shapes}")
        if self.images == 0:
            raise ValueError(f"a test set needs at least one image; got {shapes}")

    @property
    def images(self) -> int:
        return self.intersection.shape[0]

    def mean_iou(self) -> float:
        """mIoU of the whole test set: per-class IoU of the summed counts, averaged."""
        return float(mean_iou_of_sums(self.intersection.sum(0), self.union.sum(0)))

    def pixel_accuracy(self) -> float:
        """Share of all counted pixels predicted right (NaN if none were counted)."""
        return float(_accuracy_of_sums(self.intersection.sum(), self.pixels.sum()))


def pooled(runs: Sequence[Counts]) -> Counts:
    """Several runs tested on the same images (e.g. seeds) as one: each image's counts averaged
    over the runs, so that a group of runs is bootstrapped and tested like one run."""
    if not runs:
        raise ValueError("no runs to pool")
    shapes = [run.intersection.shape for run in runs]
    if len(set(shapes)) > 1:
        raise ValueError(f"runs to pool must have the same [images, classes]; got {shapes}")
    return Counts(*(np.mean([getattr(run, name) for run in runs], axis=0)
                    for name in ("intersection", "union", "pixels")))


def mean_iou_of_sums(intersection_sums: np.ndarray, union_sums: np.ndarray) -> np.ndarray:
    """mIoU of summed counts [..., C] -> [...]: the mean IoU over the classes of non-zero union
    (nanmean's arithmetic without its warning), NaN where no class has one."""
    present = union_sums > 0
    ious = np.divide(intersection_sums, union_sums, out=np.zeros(np.shape(union_sums)),
                     where=present)
    classes = present.sum(axis=-1)
    return np.divide(ious.sum(axis=-1), classes, out=np.full(classes.shape, np.nan),
                     where=classes > 0)


def _accuracy_of_sums(correct: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    return np.divide(correct, pixels, out=np.full(np.shape(pixels), np.nan), where=pixels > 0)


def bootstrap_intervals(counts: Counts, resamples: int = DEFAULT_RESAMPLES,
                        seed: int = DEFAULT_SEED,
                        confidence: float = CONFIDENCE) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap intervals of mIoU and pixel accuracy, resampling images: how far
    the scores could move on another test set drawn like this one."""
    classes = counts.intersection.shape[1]
    columns = np.column_stack([counts.intersection, counts.union,
                               counts.intersection.sum(1), counts.pixels])
    sums = np.concatenate(list(_bootstrap_sums(columns, resamples, seed)))
    ious = mean_iou_of_sums(sums[:, :classes], sums[:, classes:2 * classes])
    accuracies = _accuracy_of_sums(sums[:, -2], sums[:, -1])
    return {"mIoU": _percentile_interval(ious, confidence),
            "pixel_acc": _percentile_interval(accuracies, confidence)}


@dataclass(frozen=True)
class PairedTest:
    """mIoU(a) - mIoU(b) on the same images, its paired-bootstrap interval [low, high] and the
    two-sided p-value of a paired permutation test (exact: all 2**images swaps enumerated)."""

    difference: float
    low: float
    high: float
    p_value: float
    images: int
    permutations: int
    exact: bool


def paired_test(a: Counts, b: Counts, resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> PairedTest:
    """Whether run a's mIoU differs from run b's on the same images (row i of both is the
    same image; aligning them is the caller's job): paired bootstrap and permutation test."""
    if a.intersection.shape != b.intersection.shape:
        raise ValueError(f"paired runs need the same [images, classes]; got "
                         f"{a.intersection.shape} and {b.intersection.shape}")
    classes = a.intersection.shape[1]
    columns = np.column_stack([a.intersection, a.union, b.intersection, b.union])
    sums = np.concatenate(list(_bootstrap_sums(columns, resamples, seed)))
    differences = (mean_iou_of_sums(sums[:, :classes], sums[:, classes:2 * classes])
                   - mean_iou_of_sums(sums[:, 2 * classes:3 * classes], sums[:, 3 * classes:]))
    low, high = _percentile_interval(differences, confidence)
    difference = a.mean_iou() - b.mean_iou()
    exact = 2**a.images <= resamples
    permutations = 2**a.images if exact else resamples
    null = _swap_differences(a, b, permutations, exact, np.random.default_rng([seed, 1]))
    return PairedTest(difference, low, high, _permutation_p_value(null, difference, exact),
                      a.images, permutations, exact)


def _chunks(total: int, images: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of consecutive chunks of `total` rows whose [rows, images] float64 matrix
    stays under _CHUNK_BYTES."""
    if total < 1:
        raise ValueError(f"resamples must be at least 1; got {total}")
    rows = max(1, _CHUNK_BYTES // (8 * images))
    for start in range(0, total, rows):
        yield start, min(rows, total - start)


def _bootstrap_sums(columns: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Column sums [rows, K] of bootstrap resamples of the rows (images) of `columns`, a chunk
    at a time. The draws are those of scipy.stats.bootstrap with np.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    images = columns.shape[0]
    for _, rows in _chunks(resamples, images):
        draws = rng.integers(0, images, size=(rows, images))
        draws += images * np.arange(rows)[:, None]  # a distinct bin for each (resample, image)
        weights = np.bincount(draws.ravel(), minlength=rows * images).reshape(rows, images)
        yield weights.astype(np.float64) @ columns


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Linear-interpolation quantiles at (1 - confidence) / 2 and its complement, as
    scipy.stats.bootstrap(method='percentile'). Resamples whose score is undefined (every drawn
    image without the classes or pixels it needs) are left out; NaN if all are."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(defined, [tail, 1 - tail], method="linear")
    return float(low), float(high)


def _swap_differences(a: Counts, b: Counts, permutations: int, exact: bool,
                      rng: np.random.Generator) -> np.ndarray:
    """mIoU(a') - mIoU(b') [permutations] where a' and b' trade the counts of a subset of the
    images: all 2**images subsets in binary order when exact, else random ones."""
    classes = a.intersection.shape[1]
    a_columns = np.column_stack([a.intersection, a.union])
    b_columns = np.column_stack([b.intersection, b.union])
    moved_per_image, a_sums, b_sums = a_columns - b_columns, a_columns.sum(0), b_columns.sum(0)
    differences = []
    for start, rows in _chunks(permutations, a.images):
        if exact:
            codes = np.arange(start, start + rows)[:, None]
            swaps = (codes >> np.arange(a.images)) & 1
        else:
            swaps = rng.integers(0, 2, size=(rows, a.images))
        moved = swaps.astype(np.float64) @ moved_per_image
        a_swapped, b_swapped = a_sums - moved, b_sums + moved
        differences.append(mean_iou_of_sums(a_swapped[:, :classes], a_swapped[:, classes:])
                           - mean_iou_of_sums(b_swapped[:, :classes], b_swapped[:, classes:]))
    return np.concatenate(differences)


def _permutation_p_value(null: np.ndarray, observed: float, exact: bool) -> float:
    """Two-sided p-value as scipy.stats.permutation_test (1.17) defines it: twice the smaller
    tail share, ties within a relative 100 eps, +1 on both counts when randomised; NaN if the
    observed difference is."""
    if np.isnan(observed):
        return float("nan")
    tie = abs(_TIE_TOLERANCE * observed)
    adjustment = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + tie) + adjustment) / (null.size + adjustment)
    greater = (np.count_nonzero(null >= observed - tie) + adjustment) / (null.size + adjustment)
    return float(min(1.0, 2 * min(less, greater)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, at most 1) for several tests at
    once; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=np.float64)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = (order.size - np.arange(order.size)) * p[order]
    adjusted = np.full(p.shape, np.nan)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()
