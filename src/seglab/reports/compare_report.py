"""How a comparison is shown: formatted columns with the best values marked, as Markdown
(comparison.md) and for the terminal view of `seglab-compare`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from seglab.reports.compare import Comparison, Metric
from seglab.reports.paired_tests import ALPHA, INTERVAL_COLUMNS, POOLED_COLUMNS, TEST_COLUMNS

TEXT_PRIORITY = {"run": 0, "status": 0, "model": 1, "encoder": 1, "n": 1, "data": 2,
                 "n_pruned": 2, "n_failed": 2, "n_unfinished": 2, "error": 3, "reproduces": 4,
                 "runs": 5}
# shown empty when 0
COUNT_HEADERS = {"n_pruned": "pruned", "n_failed": "failed", "n_unfinished": "unfinished"}
CSV_ONLY = {"run_dir", *POOLED_COLUMNS, *INTERVAL_COLUMNS, *TEST_COLUMNS} - {"p_holm"}
INTERVAL_SCORES = ("test_mIoU", "test_pixel_acc")  # shown as `value [low, high]`
POOLED = Metric("test_mIoU_pooled", "pooled test mIoU", ("test_mIoU_pooled",))
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


def with_interval(cells: list[str], frame: pd.DataFrame, score: str) -> list[str]:
    """`value [low, high]` where the row has an interval of test `score` (mIoU, pixel_acc)."""
    low, high = f"test_{score}_low", f"test_{score}_high"
    if low not in frame:
        return cells
    return [cell + (f" [{lower:.4f}, {upper:.4f}]" if pd.notna(lower) else "")
            for cell, lower, upper in zip(cells, frame[low], frame[high], strict=True)]


def score_column(comparison: Comparison, metric: Metric) -> Column:
    """A score, or `mean ± std` per group (no ± for a single run or a std of 0), a run's test
    scores with their interval; the best is marked among finished rows (a pruned run's
    validation score is shown, never marked); in a run's test mIoU, every row not
    significantly below the best is (`same_as_best`)."""
    values = comparison.numbers(metric.column)
    cells = [metric.show(value) for value in values]
    spread = comparison.spread(metric.column)
    if spread is not None:
        cells = [cell + (f" ± {metric.show(std)}" if pd.notna(std) and std != 0 else "")
                 for cell, std in zip(cells, spread, strict=True)]
    priority = 0 if metric == comparison.headline else metric.priority
    if metric.column in INTERVAL_SCORES and not comparison.grouped:
        cells = with_interval(cells, comparison.frame, metric.column.removeprefix("test_"))
        priority = min(priority, 1)  # kept on a narrow terminal before `p vs best`
    best = best_rows(values.where(comparison.finished()), metric.better)
    if metric.column == "test_mIoU" and not comparison.grouped:
        best = tied_with_best(comparison.frame, best)
    return Column(metric.column, metric.header, cells, best, True, priority)


def tied_with_best(frame: pd.DataFrame, best: list[bool]) -> list[bool]:
    """The best rows and those the paired tests could not tell from them, where there were
    tests (a row not tested is not marked); else `best`."""
    same = frame.get("same_as_best")
    if same is None or not same.notna().any():
        return best
    return same.fillna(False).astype(bool).tolist()


def pooled_column(comparison: Comparison) -> Column:
    """A group's pooled test mIoU with its interval, the rows tied with the best marked."""
    frame = comparison.frame
    cells = with_interval([POOLED.show(value) for value in frame["test_mIoU_pooled"]], frame,
                          "mIoU")
    best = tied_with_best(frame, best_rows(frame["test_mIoU_pooled"], "max"))
    return Column(POOLED.column, POOLED.header, cells, best, True, 1)  # before `p vs best`


def p_value_column(frame: pd.DataFrame) -> Column:
    """`p vs best`: the Holm-adjusted p-value of each row's paired test; `best` for the best."""
    def cell(p_value: float, same: bool) -> str:
        if pd.isna(p_value):
            return "best" if pd.notna(same) and bool(same) else ""
        return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"

    cells = [cell(p_value, same) for p_value, same
             in zip(frame["p_holm"], frame["same_as_best"], strict=True)]
    return Column("p_holm", "p vs best", cells, [False] * len(cells), True, 2)


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
        elif name == "p_holm":
            columns.append(p_value_column(comparison.frame))
        elif name == POOLED.column:
            columns.append(pooled_column(comparison))
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
    if "test_mIoU_low" in comparison.frame:
        lines += ["", interval_note(comparison)]
    lines += [f"Note: {note}." for note in comparison.notes]
    return "\n".join([*lines, "", markdown_table(columns), ""])


def interval_note(comparison: Comparison) -> str:
    """What the test intervals and `p vs best` are, for comparison.md."""
    pooled = (" A group's `pooled test mIoU`: the mIoU of its runs' per-image counts averaged "
              "image by image, with that pooled interval; its `test mIoU` is the mean ± std "
              "over its runs.") if comparison.grouped else ""
    tested = "pooled test mIoU" if comparison.grouped else "test mIoU"
    return (f"`[low, high]`: 95% percentile-bootstrap interval over the test images "
            f"({comparison.resamples} resamples, seed 0; the score recomputed from each "
            f"resample's summed per-image counts).{pooled} **Bold {tested}**: the best "
            f"and every row not significantly below it (two-sided paired permutation "
            f"test over the images both were tested on, {comparison.resamples} random swaps "
            f"or all of them for up to {comparison.resamples.bit_length() - 1} images; "
            f"p-values Holm-adjusted over the rows compared with that best, α = {ALPHA}); "
            "`p vs best` is the adjusted p-value.")
