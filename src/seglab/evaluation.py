"""Evaluation: test a trained run's checkpoint again, from the run's own saved config."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seglab.builders import build_datamodule, build_loggers, build_module, build_trainer
from seglab.data_problems import stop_on_data_problems
from seglab.errors import ConfigError
from seglab.results import run_header, stage_metrics, versions
from seglab.task import finish_run, start_run

# Sections that say where this evaluation writes: taken from the eval config, not the run's.
EVAL_OWNED = ("paths", "logger", "task_name", "ckpt_path")


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


def merge_eval_config(run_cfg: DictConfig, eval_cfg: DictConfig,
                      overrides: list[str]) -> DictConfig:
    """The run's config, with this evaluation's output sections and command-line overrides.

    The checkpoint supplies the weights, so no pretrained weights are fetched or loaded.
    """
    merged = OmegaConf.merge(run_cfg, {key: eval_cfg[key] for key in EVAL_OWNED})
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in EVAL_OWNED or key.startswith("hydra"):
            continue
        OmegaConf.update(merged, key, OmegaConf.select(eval_cfg, key), merge=False)
    merged.trainer.default_root_dir = eval_cfg.paths.output_dir
    merged.model.weights = None
    merged.model.encoder_weights = None
    return merged


def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    """Test `cfg.ckpt_path` on its run's test split; writes metrics.json in the eval folder."""
    ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    cfg = merge_eval_config(load_run_config(ckpt_path), cfg, overrides)
    output_dir = start_run(cfg)

    datamodule = build_datamodule(cfg)
    class_names = datamodule.class_names
    if datamodule.reads_files:  # the same samples as training saw, bad ones skipped alike
        stop_on_data_problems(datamodule, class_names)
    module = build_module(cfg, class_names, datamodule)
    trainer = build_trainer(cfg, callbacks=[], loggers=build_loggers(cfg))
    trainer.test(module, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False)

    metrics = {
        **run_header(cfg, class_names),
        **stage_metrics(dict(trainer.callback_metrics), "test", class_names),
        "checkpoint": str(ckpt_path),
        "evaluated_run": str(ckpt_path.parent.parent),
        "run_dir": str(output_dir),
        "versions": versions(),
    }
    finish_run(metrics, output_dir)
    return metrics, {"datamodule": datamodule, "module": module, "trainer": trainer}
