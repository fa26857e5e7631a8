"""Many run folders become one comparison table: the library behind `seglab-compare`.

A run folder holds `metrics.json` and/or `.hydra/config.yaml`; a sweep folder holds numbered run
folders. Each run becomes one row: status, model, encoder, data, the command-line overrides that
differ between runs, and its scores. Only completed runs carry scores.

Best values: in a score column holding at least two distinct values, the highest is best for
mIoU, accuracy, IoU and Dice, the lowest for loss, parameters, GFLOPs and training time; epochs
and other counts are not marked. Grouped rows (`--group-by`) average the completed runs of a
group: `mean ± std` with the sample std (ddof=1), left empty for a single run and not shown when
it is 0; `n` counts the completed runs, `n_failed` and `n_unfinished` the others.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

IDENTITY = ("model", "encoder", "data")
NOT_SCORES = {"seed", "num_classes"}  # numbers in metrics.json that are settings, not scores
STATUS_ORDER = ("completed", "failed", "running", "unfinished")
TEXT_PRIORITY = {"run": 0, "status": 0, "model": 1, "encoder": 1, "n": 1, "data": 2,
                 "n_failed": 2, "n_unfinished": 2, "error": 3, "reproduces": 4, "runs": 5}
COUNT_HEADERS = {"n_failed": "failed", "n_unfinished": "unfinished"}  # shown empty when 0
CSV_ONLY = {"run_dir"}


class CompareError(Exception):
    """A bad path, run folder or key, said in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


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
    Metric("params_M", "params (M)", ("params",), "min", scale=1e-6, digits=2),
    Metric("gflops", "GFLOPs", ("gflops",), "min", digits=2),
    Metric("epochs", "epochs", ("epochs",), None, digits=None, priority=4),
    Metric("train_seconds", "train time", ("train_seconds",), "min", seconds=True),
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


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside a text by value: `2` before `10`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class Run:
    """What one run folder says: status, model/encoder/data, overrides and metrics.json."""

    folder: Path
    label: str
    status: str
    identity: dict
    overrides: dict[str, str]
    metrics: dict


@dataclass
class Sources:
    """The run folders found from the command line, and where the files go by default."""

    run_dirs: list[Path]
    out_dir: Path


def is_run_dir(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or (folder / ".hydra" / "config.yaml").is_file()


def run_dirs_below(folder: Path) -> list[Path]:
    """Run folders at or below `folder`, never looking inside a run folder or a hidden one."""
    found = []
    for parent, children, _ in os.walk(folder):
        if is_run_dir(Path(parent)):
            found.append(Path(parent))
            children.clear()
        else:
            children[:] = [name for name in children if not name.startswith(".")]
    return found


def _folders(argument: str) -> tuple[list[Path], bool]:
    """The folders an argument names (a metrics.json names its folder), and whether it was
    a glob."""
    path = Path(argument).expanduser()
    is_glob = not path.exists() and re.search(r"[*?[]", argument) is not None
    if not path.exists() and not is_glob:
        raise CompareError(f"no such folder: {argument}", code=2)
    matches = sorted(glob.glob(str(path)), key=natural_key) if is_glob else [str(path)]
    folders = [Path(match).parent if Path(match).name == "metrics.json" else Path(match)
               for match in matches]
    folders = [folder.resolve() for folder in folders if folder.is_dir()]
    if not folders:
        raise CompareError(f"no folder matches {argument!r}" if is_glob
                           else f"not a folder: {argument}", code=2)
    return folders, is_glob


def find_runs(arguments: Sequence[str]) -> Sources:
    """Every run folder below the arguments (folders or globs), once each, in natural order."""
    run_dirs: dict[Path, None] = {}
    out_dir = None
    for argument in arguments:
        folders, is_glob = _folders(argument)
        found = [run_dir for folder in folders for run_dir in run_dirs_below(folder)]
        if not found:
            raise CompareError(f"no run folders (metrics.json or .hydra/config.yaml) below "
                               f"{argument}", code=2)
        run_dirs.update(dict.fromkeys(found))
        if out_dir is None:
            out_dir = Path(os.path.commonpath([folder.parent for folder in folders])) \
                if is_glob else folders[0]
    return Sources(list(run_dirs), out_dir)


def run_labels(run_dirs: Sequence[Path]) -> dict[Path, str]:
    """Each run folder's path relative to the common parent of all of them."""
    common = Path(os.path.commonpath(run_dirs))
    if common in run_dirs:
        common = common.parent
    return {run_dir: run_dir.relative_to(common).as_posix() for run_dir in run_dirs}


def load_run_metrics(path: Path) -> dict | None:
    """A run's metrics.json, None when there is none; a foreign one is an error."""
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CompareError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(metrics, dict) or "status" not in metrics:
        raise CompareError(f"{path}: not a seglab metrics.json (expected an object with a "
                           "'status' key)")
    return metrics


def read_yaml(path: Path):
    """A YAML file's contents, None when it does not exist."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CompareError(f"{path}: not readable YAML ({type(error).__name__})") from None


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The job's command-line overrides as key → value (`+`/`~` prefixes and hydra.* dropped)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    items = read_yaml(path) or []
    if not isinstance(items, list):
        raise CompareError(f"{path}: expected a YAML list of overrides like ['seed=1']")
    overrides = {}
    for item in map(str, items):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra."):
            overrides[key] = value
    return overrides


def read_run(run_dir: Path, label: str) -> Run:
    """One run folder; model, encoder and data come from the saved config when metrics.json
    lacks them (a failed or unfinished run)."""
    metrics = load_run_metrics(run_dir / "metrics.json")
    identity = {key: (metrics or {}).get(key) for key in IDENTITY}
    if None in identity.values():
        config = read_yaml(run_dir / ".hydra" / "config.yaml")
        config = config if isinstance(config, dict) else {}
        for key in IDENTITY:
            group = config.get(key)
            if identity[key] is None and isinstance(group, dict):
                identity[key] = group.get("name")
    status = str(metrics["status"]) if metrics else "unfinished"
    return Run(run_dir, label, status, identity, read_overrides(run_dir), metrics or {})


def read_runs(sources: Sources) -> list[Run]:
    """Every found run folder, read, in natural order of its label."""
    labels = run_labels(sources.run_dirs)
    runs = [read_run(run_dir, label) for run_dir, label in labels.items()]
    return sorted(runs, key=lambda run: natural_key(run.label))


def status_summary(runs: Sequence[Run]) -> str:
    """`7 runs: 5 completed, 1 failed, 1 running`."""
    counts = Counter(run.status for run in runs)
    order = [*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER))]
    parts = ", ".join(f"{counts[status]} {status}" for status in order if counts[status])
    return f"{len(runs)} run{'s' * (len(runs) != 1)}: {parts}"


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
    """One row per run, under the CSV's column names; scores only for completed runs."""
    labels = {run.folder: run.label for run in runs}
    rows = []
    for run in runs:
        scores = run.metrics if run.status == "completed" else {}
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
                metrics: Sequence[Metric]) -> pd.DataFrame:
    """One row per group of runs sharing `keys`: run counts, then mean and std of each score
    (over completed runs; std with ddof=1), then the group's run labels."""
    status = frame["status"]
    counted = frame.assign(n=status.eq("completed").astype(int),
                           n_failed=status.eq("failed").astype(int))
    counted["n_unfinished"] = 1 - counted["n"] - counted["n_failed"]
    groups = counted.groupby(list(keys), dropna=False, sort=False) if keys \
        else counted.groupby(lambda _: 0)
    scores = groups[[metric.column for metric in metrics]].agg(["mean", "std"])
    scores.columns = [f"{column}_{stat}" for column, stat in scores.columns]
    counts = groups[["n", "n_failed", "n_unfinished"]].sum()
    runs = groups["run"].agg(" ".join).rename("runs")
    return pd.concat([counts, scores, runs], axis=1).reset_index(drop=not keys)


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
                     sort: str | None = None, group_by: Sequence[str] = ()) -> Comparison:
    """The comparison table of `runs`: checks the keys, builds, groups and sorts; `metric`
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
    group_keys = None
    if group_by:
        valid = list(dict.fromkeys([*IDENTITY, *(key for run in runs for key in run.overrides)]))
        for key in group_by:
            if key not in valid:
                raise CompareError(f"unknown --group-by key {key!r}; valid: "
                                   f"{', '.join(valid)}", code=2)
        group_keys = [key for key in (*IDENTITY, *overrides) if key not in group_by]
        frame = group_frame(frame, group_keys, metrics)
    comparison = Comparison(frame, metrics, headline, group_keys)
    sort_comparison(comparison, sort)
    return comparison


@dataclass
class Column:
    """One column as Markdown and the terminal show it."""

    name: str
    header: str
    cells: list[str]
    best: list[bool]
    numeric: bool
    priority: int  # terminal: the highest priorities are dropped first when too wide


def best_rows(values: pd.Series, better: str | None) -> list[bool]:
    """Which rows hold the best value, when the column has at least two distinct values."""
    present = values.dropna()
    if better is None or present.nunique() < 2:
        return [False] * len(values)
    return values.eq(present.max() if better == "max" else present.min()).tolist()


def score_column(comparison: Comparison, metric: Metric) -> Column:
    """A score, or `mean ± std` per group (no ± for a single run or a std of 0)."""
    values = comparison.numbers(metric.column)
    cells = [metric.show(value) for value in values]
    spread = comparison.spread(metric.column)
    if spread is not None:
        cells = [cell + (f" ± {metric.show(std)}" if pd.notna(std) and std != 0 else "")
                 for cell, std in zip(cells, spread, strict=True)]
    priority = 0 if metric == comparison.headline else metric.priority
    return Column(metric.column, metric.header, cells, best_rows(values, metric.better), True,
                  priority)


def text_column(name: str, values: pd.Series) -> Column:
    """A label or count column (a failed/unfinished count of 0 is shown empty)."""
    cells = ["" if pd.isna(value) or (name in COUNT_HEADERS and value == 0) else str(value)
             for value in values]
    return Column(name, COUNT_HEADERS.get(name, name), cells, [False] * len(cells),
                  pd.api.types.is_numeric_dtype(values), TEXT_PRIORITY.get(name, 1))


def display_columns(comparison: Comparison) -> list[Column]:
    """What Markdown and the terminal show: the CSV's columns, scores formatted, run_dir and
    columns empty in every row left out (the headline metric always stays)."""
    metrics = {metric.column: metric for metric in comparison.metrics}
    columns = []
    for name in comparison.frame.columns:
        base = name.removesuffix("_mean") if comparison.grouped else name
        if base in metrics:
            columns.append(score_column(comparison, metrics[base]))
        elif name not in CSV_ONLY and not (comparison.grouped and name.endswith("_std")):
            columns.append(text_column(name, comparison.frame[name]))
    return [column for column in columns
            if column.name == comparison.headline.column or any(column.cells)]


def markdown_table(columns: Sequence[Column]) -> str:
    """A Markdown table with the best value of each score in bold."""
    rows = [[(f"**{cell}**" if best else cell).replace("|", r"\|")
             for cell, best in zip(column.cells, column.best, strict=True)]
            for column in columns]
    frame = pd.DataFrame(list(zip(*rows, strict=True)), columns=[c.header for c in columns])
    return frame.to_markdown(index=False, disable_numparse=True,
                             colalign=["right" if c.numeric else "left" for c in columns])


def markdown_report(comparison: Comparison, summary: str) -> str:
    """comparison.md: what was compared, how to read it, and the table."""
    lines = ["# Run comparison", "", f"{summary}. Sorted by {comparison.sorted_by}.", "",
             "**Bold**: the best in its column (highest mIoU, accuracy, IoU and Dice; lowest "
             "loss, parameters, GFLOPs and train time)."]
    if comparison.grouped:
        lines += ["", "Grouped: `mean ± std` over the completed runs of each group (sample std; "
                  "none for a single run), `n` completed runs."]
    return "\n".join([*lines, "", markdown_table(display_columns(comparison)), ""])
