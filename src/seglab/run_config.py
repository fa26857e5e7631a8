"""A trained run's saved config, reloaded by the commands that start from its checkpoint
(eval, predict, export), with their own output sections and command-line overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from seglab.errors import ConfigError


def load_run_config(ckpt_path: Path) -> DictConfig:
    """The saved config of the run that wrote `ckpt_path`, after checking the checkpoint."""
    if not ckpt_path.is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file at {ckpt_path}")
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:
        raise ConfigError(f"ckpt_path: {ckpt_path} is not a readable PyTorch checkpoint "
                          f"({type(error).__name__})") from error
    if not isinstance(checkpoint, dict) or "seglab" not in checkpoint \
            or "state_dict" not in checkpoint:
        raise ConfigError(f"ckpt_path: {ckpt_path} was not written by seglab-train "
                          "(it has no 'seglab' entry); pass <run>/checkpoints/best.ckpt")
    run_dir = ckpt_path.parent.parent
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"ckpt_path: {ckpt_path} is not in a seglab run folder: "
                          f"{config_file} is missing")
    return OmegaConf.load(config_file)


def merge_run_config(run_cfg: DictConfig, entry_cfg: DictConfig, overrides: Sequence[str],
                     owned: Sequence[str]) -> DictConfig:
    """The run's config, with the entry point's `owned` sections (where it writes, what it
    reads) and its command-line overrides. The checkpoint supplies the weights, so no
    pretrained weights are fetched or loaded."""
    merged = OmegaConf.merge(run_cfg, {key: entry_cfg[key] for key in owned if key in entry_cfg})
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in owned or key.startswith("hydra"):
            continue
        OmegaConf.update(merged, key, OmegaConf.select(entry_cfg, key), merge=False)
    merged.trainer.default_root_dir = entry_cfg.paths.output_dir
    merged.model.weights = None
    merged.model.encoder_weights = None
    return merged
