"""Evaluation: test a trained run's checkpoint again, from the run's own saved config."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seglab.builders import build_datamodule, build_loggers, build_module, build_trainer
from seglab.data_problems import stop_on_data_problems
from seglab.results import run_header, stage_metrics, versions
from seglab.run_config import load_run_config, merge_run_config
from seglab.task import finish_run, start_run

# Sections that say where this evaluation writes: taken from the eval config, not the run's.
EVAL_OWNED = ("paths", "logger", "task_name", "ckpt_path")


def evaluate(cfg: DictConfig) -> tuple[dict, dict]:
    """Test `cfg.ckpt_path` on its run's test split; writes metrics.json in the eval folder."""
    ckpt_path = Path(cfg.ckpt_path).expanduser().resolve()
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    cfg = merge_run_config(load_run_config(ckpt_path), cfg, overrides, EVAL_OWNED)
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
