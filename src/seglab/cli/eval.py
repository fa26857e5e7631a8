"""seglab-eval: test a trained run's checkpoint again, from the run's own saved config."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seglab.cli.arguments import exit_on_command_line_error
from seglab.runs.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def hydra_main(cfg: DictConfig) -> float | None:
    from seglab.inference.evaluation import evaluate  # torch and Lightning: only once a run starts
    from seglab.runs.task import run_task

    return run_task(evaluate, cfg)


def main() -> None:
    """The `seglab-eval` console script."""
    exit_on_command_line_error()
    hydra_main()


if __name__ == "__main__":
    main()
