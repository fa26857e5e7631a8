"""seglab-train: fit a model, test its best checkpoint, and fill the run folder."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from seglab.cli.arguments import exit_on_command_line_error
from seglab.runs.config import config_dir
from seglab.runs.resume import resume_argument


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    from seglab.engine.training import train
    from seglab.runs.task import run_task  # torch and Lightning: only once a run starts

    return run_task(train, cfg)


def main() -> None:
    """The `seglab-train` console script."""
    exit_on_command_line_error()
    sys.argv += resume_argument(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
