"""seglab-check-data: scan every split of a dataset and list every problem with its file."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from seglab.config import config_dir
from seglab.data.datamodule import SegmentationDataModule
from seglab.data.files import DataError
from seglab.report import data_report
from seglab.task import exit_on_unknown_choice, run_task


def _show(reports: list, class_names: list[str], save_to: Path | None = None) -> None:
    console = Console(record=save_to is not None)
    for table in data_report(reports, class_names):
        console.print(table)
    if save_to is not None:
        save_to.write_text(console.export_text())


def stop_on_data_problems(datamodule: SegmentationDataModule, class_names: list[str]) -> None:
    """Before training: check the data; problems stop the run with the report, unless
    `data.on_error: skip`, which drops the bad samples (the report is still shown)."""
    reports = datamodule.check()
    problems = sum(len(report.problems) for report in reports)
    if problems:
        _show(reports, class_names)
    if problems and datamodule.on_error == "raise":
        raise DataError(f"the data check found {problems} problem(s), listed above; fix them, "
                        "or set data.on_error=skip to train on the rest")


def check_data(cfg: DictConfig) -> tuple[dict, dict]:
    """Scan, print and save the report (`data_report.txt` in the run folder); exit 1 on any
    problem."""
    datamodule = instantiate(cfg.data, on_error="raise")
    class_names = datamodule.class_names
    reports = datamodule.check()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _show(reports, class_names, output_dir / "data_report.txt")
    problems = sum(len(report.problems) for report in reports)
    if problems:
        raise SystemExit(1)
    return {"problems": 0}, {"datamodule": datamodule, "reports": reports}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="check_data")
def hydra_main(cfg: DictConfig) -> None:
    run_task(check_data, cfg)


def main() -> None:
    """The `seglab-check-data` console script."""
    exit_on_unknown_choice()
    hydra_main()


if __name__ == "__main__":
    main()
