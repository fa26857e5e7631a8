"""Data checks as a step of a run: show the report, stop on problems, or scan a whole dataset."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from seglab.data.datamodule import SegmentationDataModule
from seglab.data.files import DataError
from seglab.report import data_report


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
