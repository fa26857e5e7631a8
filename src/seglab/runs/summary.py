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
