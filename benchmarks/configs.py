"""seglab's own Hydra configs composed in-process, as its entry points receive them, so a
benchmark builds exactly what a command line would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from seglab.config import config_dir


def compose_config(name: str, output_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The config `name` (train, predict...) with `overrides`, writing to `output_dir`, with
    Hydra's runtime registered so `${hydra:...}` values resolve as under the console script."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg
