"""Intervals and paired tests for a comparison, from the runs' per-image test counts
(`test_per_image.npz`).

Each row gets its test mIoU's and pixel accuracy's 95% bootstrap interval over the test images
(a group of runs: their per-image counts averaged image by image, the pooled interval). Rows
tested on the same images (same ids and classes) form a family; in a family of two or more,
each row is tested against the family's best test mIoU with a two-sided paired permutation
test over the images, and the p-values are Holm-adjusted over the family: `same_as_best` is
true for the best and for every row whose adjusted p-value is at least `ALPHA`. Rows tested
on other images are never paired with them; the notes say which and why, in one line each.
Images pair by id, whatever order each run tested them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seglab.core.significance import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Counts,
    bootstrap_intervals,
    holm,
    paired_test,
    pooled,
)
from seglab.reports.run_folders import CompareError, Run
from seglab.runs.per_image import PER_IMAGE_FILE, PerImageCounts, read_per_image

ALPHA = 0.05
INTERVAL_COLUMNS = ("test_mIoU_low", "test_mIoU_high", "test_pixel_acc_low",
                    "test_pixel_acc_high")
POOLED_COLUMNS = ("test_mIoU_pooled", "test_pixel_acc_pooled")  # a group's, around its interval
TEST_COLUMNS = ("mIoU_vs_best", "mIoU_vs_best_low", "mIoU_vs_best_high", "p_value", "p_holm",
                "same_as_best")


@dataclass(frozen=True)
class RowCounts:
    """What one row's statistics are computed from: its completed runs' per-image counts,
    pooled, and the test images they were all tested on."""

    counts: Counts
    ids: tuple[str, ...]
    class_names: tuple[str, ...]

    @property
    def image_set(self) -> tuple:
        return self.ids, self.class_names


def read_counts(run: Run) -> PerImageCounts | None:
    """A run's per-image counts; None for runs from before they were kept."""
    path = run.folder / PER_IMAGE_FILE
    if not path.is_file():
        return None
    try:
        return read_per_image(path)
    except ValueError as error:
        raise CompareError(str(error)) from None


def by_id(scores: PerImageCounts) -> tuple[tuple[str, ...], Counts]:
    """The images' ids in sorted order and the counts in that order: runs that tested the
    same images in another order pair image by image."""
    order = np.argsort(np.asarray(scores.ids), kind="stable")
    counts = scores.counts
    return tuple(scores.ids[position] for position in order), Counts(
        counts.intersection[order], counts.union[order], counts.pixels[order])


def some(labels: Sequence[str], shown: int = 3) -> str:
    """A few labels, and how many more: notes stay one line in large sweeps."""
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more


def row_counts(label: str, runs: Sequence[Run], notes: list[str]) -> RowCounts | None:
    """A row's counts: its completed runs', aligned by image id and averaged image by image;
    None for runs without per-image counts, or (said in a note) a group whose runs were
    tested on different images or only in part kept their counts."""
    completed = [run for run in runs if run.status == "completed"]
    found = [read_counts(run) for run in completed]
    if all(scores is None for scores in found):
        return None
    without = [run.label for run, scores in zip(completed, found, strict=True) if scores is None]
    if without:
        notes.append(f"{label}: no pooled interval, {some(without)} kept no per-image counts")
        return None
    aligned = [(*by_id(scores), tuple(scores.class_names)) for scores in found]
    if len({(ids, classes) for ids, _, classes in aligned}) > 1:
        notes.append(f"{label}: no pooled interval, its runs were tested on different images")
        return None
    ids, _, class_names = aligned[0]
    return RowCounts(pooled([counts for _, counts, _ in aligned]), ids, class_names)


def describe_difference(family: tuple, other: tuple) -> str:
    """How two image sets differ, briefly: counts and an example id."""
    (ids, classes), (other_ids, other_classes) = family, other
    if classes != other_classes:
        return f"classes {', '.join(other_classes[:4])} vs {', '.join(classes[:4])}"
    only = sorted(set(ids) ^ set(other_ids))
    return f"{len(other_ids)} vs {len(ids)} images, e.g. {only[0]!r} only in one"


def family_notes(families: dict[tuple, list[str]]) -> list[str]:
    """One line per image set beyond the largest family (image set → its rows' labels): its
    rows are not paired with it."""
    ordered = sorted(families, key=lambda key: -len(families[key]))
    return [f"{some(families[other])} tested on other images than "
            f"{some(families[ordered[0]])} ({describe_difference(ordered[0], other)}): "
            f"not paired with them" for other in ordered[1:]]


def family_tests(rows: dict[int, RowCounts], resamples: int, seed: int) -> dict[int, dict]:
    """Each row of one family against the family's best mIoU: difference, its interval,
    p-value, Holm-adjusted p-value, and whether it is indistinguishable from the best."""
    best = max(rows, key=lambda position: rows[position].counts.mean_iou())
    others = [position for position in rows if position != best]
    tests = {position: paired_test(rows[position].counts, rows[best].counts, resamples, seed)
             for position in others}
    adjusted = dict(zip(others, holm([tests[position].p_value for position in others]),
                        strict=True))
    results = {best: {"mIoU_vs_best": 0.0, "same_as_best": True}}
    for position, test in tests.items():
        results[position] = {"mIoU_vs_best": test.difference, "mIoU_vs_best_low": test.low,
                             "mIoU_vs_best_high": test.high, "p_value": test.p_value,
                             "p_holm": adjusted[position],
                             "same_as_best": bool(adjusted[position] >= ALPHA)}
    return results


def add_intervals_and_tests(frame: pd.DataFrame, members: Sequence[Sequence[Run]],
                            grouped: bool, resamples: int = DEFAULT_RESAMPLES,
                            seed: int = DEFAULT_SEED) -> list[str]:
    """Add the interval and test columns to `frame` (one row per entry of `members`, the runs
    behind each row; grouped rows also get the pooled scores their intervals are around),
    next to the test scores, when some run kept per-image counts; returns the notes."""
    notes: list[str] = []
    labels = [" ".join(run.label for run in runs) for runs in members]
    rows = [row_counts(label, runs, notes) for label, runs in zip(labels, members, strict=True)]
    if all(row is None for row in rows):
        return notes
    values: list[dict] = [{} for _ in rows]
    for position, row in enumerate(rows):
        if row is not None:
            intervals = bootstrap_intervals(row.counts, resamples, seed)
            pooled_scores = {"test_mIoU_pooled": row.counts.mean_iou(),
                             "test_pixel_acc_pooled": row.counts.pixel_accuracy()}
            values[position] = {**(pooled_scores if grouped else {}),
                                "test_mIoU_low": intervals["mIoU"][0],
                                "test_mIoU_high": intervals["mIoU"][1],
                                "test_pixel_acc_low": intervals["pixel_acc"][0],
                                "test_pixel_acc_high": intervals["pixel_acc"][1]}
    families: dict[tuple, dict[int, RowCounts]] = {}
    for position, row in enumerate(rows):
        if row is not None:
            families.setdefault(row.image_set, {})[position] = row
    for family in families.values():
        if len(family) > 1:
            for position, result in family_tests(family, resamples, seed).items():
                values[position].update(result)
    notes += family_notes({key: [labels[position] for position in family]
                           for key, family in families.items()})
    added = pd.DataFrame(values, index=frame.index, columns=[
        *(POOLED_COLUMNS if grouped else []), *INTERVAL_COLUMNS, *TEST_COLUMNS])
    added["same_as_best"] = added["same_as_best"].astype("boolean")
    after = [position for position, name in enumerate(frame.columns)
             if name.startswith("test_pixel_acc")]  # next to the test scores
    start = after[-1] + 1 if after else len(frame.columns)
    for offset, column in enumerate(added):
        frame.insert(start + offset, column, added[column])
    return notes
