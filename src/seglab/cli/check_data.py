"""seglab-check-data: scan every split of a dataset and list every problem with its file."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seglab.cli.arguments import exit_on_command_line_error
from seglab.runs.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="check_data")
def hydra_main(cfg: DictConfig) -> None:
    from seglab.data.problems import check_dataset  # torch: only once a run starts
    from seglab.runs.task import run_task

    run_task(check_dataset, cfg)


def main() -> None:
    """The `seglab-check-data` console script."""
    exit_on_command_line_error()
    hydra_main()


if __name__ == "__main__":
    main()
