"""How a comparison is shown: formatted columns with the best values marked, as Markdown
(comparison.md) and for the terminal view of `seglab-compare`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from seglab.reports.compare import Comparison, Metric

TEXT_PRIORITY = {"run": 0, "status": 0, "model": 1, "encoder": 1, "n": 1, "data": 2,
                 "n_pruned": 2, "n_failed": 2, "n_unfinished": 2, "error": 3, "reproduces": 4,
                 "runs": 5}
# shown empty when 0
COUNT_HEADERS = {"n_pruned": "pruned", "n_failed": "failed", "n_unfinished": "unfinished"}
CSV_ONLY = {"run_dir"}
# what the cost columns measure, said under the table's legend when they are shown
COST_NOTES = {
    "images_per_s": "images/s: the test's forward passes alone, at the evaluation size and "
                    "batch, on the run's device and precision (summed over DDP processes).",
    "peak_memory_mib": "peak MiB: the most memory training or test held, on a GPU in "
                       "tensors, on a CPU as the process's resident set (`peak_memory_kind` in "
                       "metrics.json; summed over DDP processes).",
}


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
    """A score, or `mean ± std` per group (no ± for a single run or a std of 0); the best is
    marked among finished rows (a pruned run's validation score is shown, never marked)."""
    values = comparison.numbers(metric.column)
    cells = [metric.show(value) for value in values]
    spread = comparison.spread(metric.column)
    if spread is not None:
        cells = [cell + (f" ± {metric.show(std)}" if pd.notna(std) and std != 0 else "")
                 for cell, std in zip(cells, spread, strict=True)]
    priority = 0 if metric == comparison.headline else metric.priority
    best = best_rows(values.where(comparison.finished()), metric.better)
    return Column(metric.column, metric.header, cells, best, True, priority)


def text_column(name: str, values: pd.Series) -> Column:
    """A label or count column (a pruned/failed/unfinished count of 0 is shown empty)."""
    cells = ["" if pd.isna(value) or (name in COUNT_HEADERS and value == 0) else str(value)
             for value in values]
    same_everywhere = len(cells) > 1 and len(set(cells)) == 1  # first to go from the terminal
    return Column(name, COUNT_HEADERS.get(name, name), cells, [False] * len(cells),
                  pd.api.types.is_numeric_dtype(values),
                  6 if same_everywhere else TEXT_PRIORITY.get(name, 1))


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
             "**Bold**: the best in its column (highest mIoU, accuracy, IoU, Dice and images/s; "
             "lowest loss, parameters, GFLOPs, peak MiB and train time)."]
    if comparison.grouped:
        lines += ["", "Grouped: `mean ± std` over the completed runs of each group (sample std; "
                  "none for a single run), `n` completed runs."]
    columns = display_columns(comparison)
    notes = [COST_NOTES[column.name] for column in columns if column.name in COST_NOTES]
    if notes:
        lines += ["", " ".join(notes)]
    return "\n".join([*lines, "", markdown_table(columns), ""])
