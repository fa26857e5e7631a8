"""Tables for the terminal: per-class IoU of one run."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def _cell(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.4f}"


def class_table(metrics: dict, class_names: Sequence[str],
                stages: Sequence[str] = ("val", "test")) -> Table:
    """Per-class IoU, then mIoU, pixel accuracy and Dice, one column per stage that ran."""
    stages = [stage for stage in stages if f"{stage}/mIoU" in metrics]
    table = Table(title="per-class IoU")
    table.add_column("class")
    for stage in stages:
        table.add_column(stage, justify="right")
    for name in class_names:
        table.add_row(name, *(_cell(metrics.get(f"{stage}/iou_{name}")) for stage in stages))
    table.add_section()
    for key in ("mIoU", "pixel_acc", "dice"):
        table.add_row(key, *(_cell(metrics.get(f"{stage}/{key}")) for stage in stages))
    return table


def print_run_summary(metrics: dict, class_names: Sequence[str], run_dir: str) -> None:
    """The per-class table and where the run's files are."""
    console = Console()
    console.print(class_table(metrics, class_names))
    print(f"run folder: {run_dir}")  # one plain line, never wrapped: scripts grep for it


def data_report(reports: Sequence, class_names: Sequence[str]) -> list[Table]:
    """Counts, size ranges and problem counts per split, and class pixel shares (the
    problems themselves are printed as plain lines by `data_problems.show_data_report`)."""
    overview = Table(title="data check")
    for column in ("split", "samples", "height", "width", "problems"):
        overview.add_column(column, justify="left" if column == "split" else "right")
    shares = Table(title="class pixel share")
    shares.add_column("class")
    for report in reports:
        sizes = [(min(values), max(values)) if values else ("—", "—")
                 for values in (report.heights, report.widths)]
        overview.add_row(report.split, str(report.count), *(f"{lo}–{hi}" for lo, hi in sizes),
                         str(len(report.problems)))
        shares.add_column(report.split, justify="right")
    for index, name in enumerate(class_names):
        cells = []
        for report in reports:
            total = int(report.class_pixels.sum())
            cells.append(f"{100 * report.class_pixels[index] / total:.2f}%" if total else "—")
        shares.add_row(name, *cells)
    return [overview, shares]
