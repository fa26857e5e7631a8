"""seglab-export: a trained run's network as an ONNX or TorchScript file with its model card."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seglab.cli.arguments import exit_on_command_line_error
from seglab.runs.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
def hydra_main(cfg: DictConfig) -> None:
    from seglab.inference.export import export  # torch: only once a run starts
    from seglab.runs.task import run_task

    run_task(export, cfg, record="export.json")  # a failure is recorded there, not as a run


def main() -> None:
    """The `seglab-export` console script."""
    exit_on_command_line_error()
    hydra_main()


if __name__ == "__main__":
    main()
