"""What the terminal shows at a run's end: per-class IoU, the test mIoU's interval."""

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


def interval_line(metrics: dict) -> str | None:
    """`test mIoU 0.9370, 95% interval [0.9301, 0.9433] over 256 test images`, when the test
    ran and kept its per-image counts."""
    interval, drawn = metrics.get("test/mIoU_ci95"), metrics.get("test/bootstrap")
    if not interval or not drawn or None in interval:
        return None
    return (f"test mIoU {metrics['test/mIoU']:.4f}, 95% interval [{interval[0]:.4f}, "
            f"{interval[1]:.4f}] over {drawn['images']} test images")


def print_run_summary(metrics: dict, class_names: Sequence[str], run_dir: str) -> None:
    """The per-class table, the test mIoU's interval and where the run's files are."""
    console = Console()
    console.print(class_table(metrics, class_names))
    line = interval_line(metrics)
    if line:
        print(line)
    print(f"run folder: {run_dir}")  # one plain line, never wrapped: scripts grep for it
