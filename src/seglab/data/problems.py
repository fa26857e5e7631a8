"""Data checks as a step of a run: show the report, stop on problems, or scan a whole dataset."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from seglab.data.datamodule import SegmentationDataModule
from seglab.data.files import DataError


def data_report(reports: Sequence, class_names: Sequence[str]) -> list[Table]:
    """Counts, size ranges and problem counts per split, and class pixel shares (the
    problems themselves are printed as plain lines by `show_data_report`)."""
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


def show_data_report(reports: list, class_names: list[str], save_to: Path | None = None) -> None:
    """Print the overview tables, then every problem on one plain line with its whole path, so
    that a report sent to a file or a pipe can be grepped; `save_to` gets the same text."""
    console = Console(record=save_to is not None)
    for table in data_report(reports, class_names):
        console.print(table)
    problems = [problem for report in reports for problem in report.problems]
    lines = [f"{len(problems)} problem(s):", *(f"problem: {p}" for p in problems)] \
        if problems else []
    for line in lines:
        print(line, file=sys.stdout)
    if save_to is not None:
        save_to.write_text(console.export_text() + "".join(f"{line}\n" for line in lines))


def stop_on_data_problems(datamodule: SegmentationDataModule, class_names: list[str]) -> None:
    """Before training: check the data; problems stop the run with the report, unless
    `data.on_error: skip`, which drops the bad samples (the report is still shown)."""
    reports = datamodule.check()
    problems = sum(len(report.problems) for report in reports)
    if problems:
        show_data_report(reports, class_names)
    if problems and datamodule.on_error == "raise":
        raise DataError(f"the data check found {problems} problem(s), listed above; fix them, "
                        "or set data.on_error=skip to train on the rest")


def check_dataset(cfg: DictConfig) -> tuple[dict, dict]:
    """Scan, print and save the report (`data_report.txt` in the run folder); exit 1 on any
    problem."""
    datamodule = instantiate(cfg.data, on_error="raise")
    class_names = datamodule.class_names
    reports = datamodule.check()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    show_data_report(reports, class_names, output_dir / "data_report.txt")
    problems = sum(len(report.problems) for report in reports)
    if problems:
        raise SystemExit(1)
    return {"problems": 0}, {"datamodule": datamodule, "reports": reports}
