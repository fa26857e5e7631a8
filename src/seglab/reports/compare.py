"""Many run folders become one comparison table: the library behind `seglab-compare`.

A run folder holds `metrics.json` and/or `.hydra/config.yaml`; a sweep folder holds numbered run
folders. Each run becomes one row: status, model, encoder, data, the command-line overrides that
differ between runs, and its scores. Only completed runs carry scores.

Best values: in a score column holding at least two distinct values, the highest is best for
mIoU, accuracy, IoU, Dice and test images/s, the lowest for loss, parameters, GFLOPs, peak
memory and training time; epochs and other counts are not marked. A run whose metrics.json
lacks a number (runs from before images/s and peak memory were measured) has an empty cell.
Grouped rows (`--group-by`) average the completed runs of a group: `mean ± std` with the
sample std (ddof=1), left empty for a single run and not shown when it is 0; `n` counts the
completed runs, `n_failed` and `n_unfinished` the others.

Runs that kept per-image test counts also get their test intervals and paired tests against
the best (`seglab.reports.paired_tests`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from seglab.core.significance import DEFAULT_RESAMPLES
from seglab.reports.paired_tests import add_intervals_and_tests
from seglab.reports.run_folders import IDENTITY, CompareError, Run, natural_key

NOT_SCORES = {"seed", "num_classes"}  # numbers in metrics.json that are settings, not scores


@dataclass(frozen=True)
class Metric:
    """One score column: its CSV name, header, metrics.json keys (the first present wins),
    which way is better, and how it is shown (`digits` None: a count)."""

    column: str
    header: str
    keys: tuple[str, ...]
    better: str | None = "max"
    scale: float = 1.0
    digits: int | None = 4
    seconds: bool = False
    priority: int = 3  # terminal: the highest priorities are dropped first when too wide

    def value(self, metrics: dict) -> float | None:
        """This score of one run, or None when its metrics.json has no number for it."""
        for key in self.keys:
            number = metrics.get(key)
            if isinstance(number, int | float) and not isinstance(number, bool):
                return number * self.scale
        return None

    def show(self, number: float) -> str:
        """The number as the tables show it; empty for a missing one."""
        if pd.isna(number):
            return ""
        if self.seconds:
            return duration(number)
        if self.digits is None:
            return f"{number:.0f}" if float(number).is_integer() else f"{number:.1f}"
        return f"{number:.{self.digits}f}"


STANDARD_METRICS = (
    Metric("params_M", "params (M)", ("params",), "min", scale=1e-6, digits=2, priority=2),
    Metric("gflops", "GFLOPs", ("gflops",), "min", digits=2),
    Metric("images_per_s", "images/s", ("test/images_per_s",), "max", digits=1),
    Metric("peak_memory_mib", "peak MiB", ("peak_memory_mib",), "min", digits=0),
    Metric("epochs", "epochs", ("epochs",), None, digits=None, priority=4),
    Metric("train_seconds", "train time", ("train_seconds",), "min", seconds=True, priority=2),
    Metric("val_mIoU_best", "best val mIoU", ("val/mIoU_best",), priority=2),
    Metric("test_mIoU", "test mIoU", ("test/mIoU",), priority=2),
    Metric("test_pixel_acc", "test acc", ("test/pixel_acc",)),
)


def duration(seconds: float) -> str:
    """`42.0s`, `12m05s` or `3h07m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = round(seconds) // 60
    if minutes < 60:
        return f"{minutes}m{round(seconds) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def differing_overrides(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value is not the same in every run (model/encoder/data excluded:
    they are columns anyway), in the order they first appear."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides if key not in IDENTITY)
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def class_metrics(runs: Sequence[Run]) -> list[Metric]:
    """Per-class IoU columns (test, else val), when every completed run has the same classes."""
    completed = [run for run in runs if run.status == "completed"]
    names = {tuple(run.metrics.get("class_names") or ()) for run in completed}
    if len(names) != 1:
        return []
    return [Metric("iou_" + re.sub(r"\W+", "_", name), f"IoU {name}",
                   (f"test/iou_{name}", f"val/iou_{name}"), priority=5)
            for name in names.pop()]


def score_keys(runs: Sequence[Run]) -> list[str]:
    """metrics.json keys that hold a number in some run and can be a score column."""
    keys = dict.fromkeys(key for run in runs for key, value in run.metrics.items()
                         if isinstance(value, int | float) and not isinstance(value, bool))
    return [key for key in keys if key not in NOT_SCORES]


def extra_metric(key: str, runs: Sequence[Run]) -> Metric:
    """A column for a metrics.json number that is not shown by default (e.g. `val/loss`)."""
    lowered = key.lower()
    better = "min" if "loss" in lowered else \
        "max" if any(word in lowered for word in ("miou", "acc", "iou", "dice")) else None
    counts = all(isinstance(run.metrics.get(key, 0), int) for run in runs)
    return Metric(key.replace("/", "_"), key, (key,), better, digits=None if counts else 4)


def find_metric(name: str, metrics: Sequence[Metric], runs: Sequence[Run]) -> Metric | None:
    """The score column that `name` means: a CSV name or a metrics.json key."""
    for metric in metrics:
        if name == metric.column or name in metric.keys:
            return metric
    return extra_metric(name, runs) if name in score_keys(runs) else None


def score_help(metrics: Sequence[Metric], runs: Sequence[Run]) -> str:
    """The valid score names, briefly: CSV names, per-class IoU collapsed."""
    names = [metric.column for metric in metrics if not metric.column.startswith("iou_")]
    names += ["iou_<class>"] * any(metric.column.startswith("iou_") for metric in metrics)
    keys = [key for key in score_keys(runs) if "/iou_" not in key]
    return f"{', '.join(names)}, or a metrics.json number ({', '.join(keys) or 'none found'})"


@dataclass
class Comparison:
    """The table: `frame` is exactly what the CSV holds; the rest says how to show it."""

    frame: pd.DataFrame
    metrics: list[Metric]
    headline: Metric
    group_keys: list[str] | None  # the columns that name a group; None: one row per run
    sorted_by: str = "run"
    notes: list[str] = field(default_factory=list)  # what the paired tests could not pair
    resamples: int = DEFAULT_RESAMPLES

    @property
    def grouped(self) -> bool:
        return self.group_keys is not None

    def numbers(self, column: str) -> pd.Series:
        """A score per row: the run's value, or the group's mean."""
        return self.frame[f"{column}_mean" if self.grouped else column]

    def spread(self, column: str) -> pd.Series | None:
        """The group's standard deviation of a score; None for one row per run."""
        return self.frame[f"{column}_std"] if self.grouped else None

    def finished(self) -> pd.Series:
        """Rows with scores: completed runs, or groups with at least one."""
        return self.frame["n"].gt(0) if self.grouped else self.frame["status"].eq("completed")

    def labels(self) -> pd.Series:
        """A short name per row for the chart: `run: model-encoder`, or what names the group
        (keys with the same value in every row left out)."""
        frame = self.frame
        if not self.grouped:
            names = frame[["model", "encoder"]].fillna("?").astype(str).agg("-".join, axis=1)
            return frame["run"] + ": " + names
        keys = [key for key in self.group_keys if frame[key].nunique(dropna=False) > 1]
        names = [frame[key].fillna("?").astype(str) for key in keys if key in IDENTITY]
        parts = [frame[key].fillna("?").astype(str).radd(f"{key}=") for key in keys
                 if key not in IDENTITY]
        if names:
            parts.insert(0, pd.concat(names, axis=1).agg("-".join, axis=1))
        return pd.concat(parts, axis=1).agg(" ".join, axis=1) if parts \
            else pd.Series("all runs", index=frame.index)


def _one_line(text) -> str | None:
    return " ".join(str(text).split()) if text else None


def run_frame(runs: Sequence[Run], overrides: Sequence[str],
              metrics: Sequence[Metric]) -> pd.DataFrame:
    """One row per run, under the CSV's column names; scores only for completed runs and for
    pruned ones (a search stopped them: their validation scores when it did)."""
    labels = {run.folder: run.label for run in runs}
    rows = []
    for run in runs:
        scores = run.metrics if run.status in ("completed", "pruned") else {}
        source = run.metrics.get("reproduces")
        rows.append({"run": run.label, "status": run.status, **run.identity,
                     **{key: run.overrides.get(key) for key in overrides},
                     **{metric.column: metric.value(scores) for metric in metrics},
                     "reproduces": labels.get(Path(str(source)).resolve(), source)
                     if source else None,
                     "error": _one_line(run.metrics.get("error")),
                     "run_dir": str(run.folder)})
    frame = pd.DataFrame(rows)
    columns = [metric.column for metric in metrics]
    frame[columns] = frame[columns].astype(float)
    return frame


def group_frame(frame: pd.DataFrame, keys: Sequence[str],
                metrics: Sequence[Metric]) -> tuple[pd.DataFrame, list[list[str]]]:
    """One row per group of runs sharing `keys`: run counts, then mean and std of each score
    (over completed runs; std with ddof=1), then the group's run labels; and those labels
    as a list per row."""
    status = frame["status"]
    counted = frame.assign(n=status.eq("completed").astype(int),
                           n_pruned=status.eq("pruned").astype(int),
                           n_failed=status.isin(["failed", "crashed"]).astype(int))
    counted["n_unfinished"] = 1 - counted["n"] - counted["n_pruned"] - counted["n_failed"]
    columns = [metric.column for metric in metrics]
    counted[columns] = counted[columns].where(status.eq("completed"), axis=0)
    groups = counted.groupby(list(keys), dropna=False, sort=False) if keys \
        else counted.groupby(lambda _: 0)
    scores = groups[[metric.column for metric in metrics]].agg(["mean", "std"])
    scores.columns = [f"{column}_{stat}" for column, stat in scores.columns]
    counts = groups[["n", "n_pruned", "n_failed", "n_unfinished"]].sum()
    members = groups["run"].agg(list)
    runs = members.str.join(" ").rename("runs")
    return pd.concat([counts, scores, runs], axis=1).reset_index(drop=not keys), members.tolist()


def _sortable(values: pd.Series) -> pd.Series:
    """Numbers as numbers, and texts in natural order (`2` before `10`)."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() == values.notna().sum():
        return numbers
    texts = sorted(values.dropna().astype(str).unique(), key=natural_key)
    return values.astype(str).map({text: rank for rank, text in enumerate(texts)})


def _after_sources(frame: pd.DataFrame) -> pd.DataFrame:
    """Each reproduced run moved to just after the run it reproduces."""
    index_of = {label: index for index, label in frame["run"].items()}
    children: dict = {index: [] for index in frame.index}
    for index, source in frame["reproduces"].items():
        if source in index_of and index_of[source] != index:
            children[index_of[source]].append(index)
    placed: dict = {}

    def place(index) -> None:
        if index not in placed:
            placed[index] = None
            for child in children[index]:
                place(child)

    reproductions = {child for group in children.values() for child in group}
    for index in [*(i for i in frame.index if i not in reproductions), *frame.index]:
        place(index)
    return frame.loc[list(placed)]


def sort_help(comparison: Comparison) -> str:
    """The valid --sort keys, briefly: CSV names, per-class IoU collapsed."""
    names = comparison.frame.columns
    if comparison.grouped:
        names = names.str.replace(r"_(mean|std)$", "", regex=True)
    names = [name for name in dict.fromkeys(names) if not name.startswith("iou_")]
    names += ["iou_<class>"] * any(m.column.startswith("iou_") for m in comparison.metrics)
    return f"{', '.join(names)}, or their metrics.json keys (e.g. test/mIoU)"


def sort_comparison(comparison: Comparison, sort: str | None) -> None:
    """Sort rows by a column (a score: best first) or by default by the headline metric, best
    first, with failed and unfinished rows last; reproduced runs follow their source."""
    frame = comparison.frame
    metric = comparison.headline if sort is None else next(
        (m for m in comparison.metrics if sort == m.column or sort in m.keys), None)
    if metric is not None:
        column, ascending = (f"{metric.column}_mean" if comparison.grouped else metric.column,
                             metric.better != "max")
        comparison.sorted_by = f"{metric.header} ({'best' if metric.better else 'lowest'} first)"
    elif sort in frame.columns:
        column, ascending = sort, True
        comparison.sorted_by = sort
    else:
        raise CompareError(f"unknown --sort key {sort!r}; valid: {sort_help(comparison)}",
                           code=2)
    frame = frame.sort_values(column, key=_sortable, ascending=ascending, na_position="last",
                              kind="stable")
    if sort is None:
        frame = frame.loc[(~comparison.finished()).loc[frame.index]
                          .sort_values(kind="stable").index]
    if not comparison.grouped:
        frame = _after_sources(frame)
    comparison.frame = frame.reset_index(drop=True)


def default_metric(runs: Sequence[Run]) -> str:
    """`val/mIoU_best`, or `test/mIoU` when no run has the first (evaluation folders)."""
    has_val = any(run.metrics.get("val/mIoU_best") is not None for run in runs)
    return "val/mIoU_best" if has_val or not any("test/mIoU" in run.metrics for run in runs) \
        else "test/mIoU"


def build_comparison(runs: Sequence[Run], metric: str | None = None,
                     sort: str | None = None, group_by: Sequence[str] = (),
                     resamples: int = DEFAULT_RESAMPLES) -> Comparison:
    """The comparison table of `runs`: checks the keys, builds, groups, adds the test intervals
    and paired tests (`resamples` bootstrap resamples and permutations), and sorts; `metric`
    (default: `default_metric`) orders the rows and is the one the chart shows."""
    metric = metric or default_metric(runs)
    metrics = [*STANDARD_METRICS, *class_metrics(runs)]
    headline = find_metric(metric, metrics, runs)
    if headline is None:
        raise CompareError(f"unknown --metric key {metric!r}; valid: "
                           f"{score_help(metrics, runs)}", code=2)
    for shown in (headline, find_metric(sort, metrics, runs) if sort else None):
        if shown is not None and shown not in metrics:
            metrics.insert(len(STANDARD_METRICS), shown)
    overrides = differing_overrides(runs)
    frame = run_frame(runs, overrides, metrics)
    members = [[run.label] for run in runs]
    group_keys = None
    if group_by:
        valid = list(dict.fromkeys([*IDENTITY, *(key for run in runs for key in run.overrides)]))
        for key in group_by:
            if key not in valid:
                raise CompareError(f"unknown --group-by key {key!r}; valid: "
                                   f"{', '.join(valid)}", code=2)
        group_keys = [key for key in (*IDENTITY, *overrides) if key not in group_by]
        frame, members = group_frame(frame, group_keys, metrics)
    by_label = {run.label: run for run in runs}
    notes = add_intervals_and_tests(frame, [[by_label[label] for label in labels]
                                            for labels in members],
                                    group_keys is not None, resamples)
    comparison = Comparison(frame, metrics, headline, group_keys, notes=notes,
                            resamples=resamples)
    sort_comparison(comparison, sort)
    return comparison
