"""seglab-predict: point a trained, exported or published model at pictures and videos."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seglab.cli.arguments import exit_on_command_line_error
from seglab.runs.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def hydra_main(cfg: DictConfig) -> None:
    from seglab.inference.prediction import RECORD, predict  # torch: only once a run starts
    from seglab.runs.task import run_task

    failed = run_task(predict, cfg, record=RECORD)
    if isinstance(failed, int) and failed > 0:
        raise SystemExit(1)  # some pictures failed; each is listed with its reason


def main() -> None:
    """The `seglab-predict` console script."""
    exit_on_command_line_error()
    hydra_main()


if __name__ == "__main__":
    main()
