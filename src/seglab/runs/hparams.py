"""What a run reports to its experiment loggers at the end: its hyperparameters and final
metrics, so TensorBoard's HParams view and wandb compare a sweep without seglab."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from seglab.runs.config import job_overrides

FINAL_METRICS = ("val/mIoU_best", "val/mIoU", "val/pixel_acc", "test/mIoU", "test/pixel_acc",
                 "test/dice", "train_seconds", "params", "gflops", "test/images_per_s",
                 "peak_memory_mib")
HPARAM_KEYS = ("model.name", "encoder.name", "data.name", "optimizer.lr",
               "optimizer.weight_decay", "data.batch_size", "trainer.max_epochs", "seed")


def run_hparams(cfg: DictConfig) -> dict:
    """The run's defining choices: model, encoder, data, loss/optimizer/scheduler choice, the
    main numbers, and every command-line override (the swept values in a sweep)."""
    params = {key.removesuffix(".name"): OmegaConf.select(cfg, key) for key in HPARAM_KEYS}
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        params.update({group: choices.get(group) for group in ("loss", "optimizer", "scheduler")})
    for override in job_overrides():
        key, _, text = override.lstrip("+~").partition("=")
        value = OmegaConf.select(cfg, key, default=text)
        if not key.startswith("hydra"):  # typed values; a group choice or a list as written
            params[key] = text if OmegaConf.is_config(value) else value
    return {key: value for key, value in params.items() if value is not None}


def final_metrics(metrics: dict) -> dict:
    """The headline results under `final/` tags, numbers only."""
    return {f"final/{key.replace('/', '_')}": float(metrics[key]) for key in FINAL_METRICS
            if isinstance(metrics.get(key), int | float)}


def log_final_results(loggers: list[Logger], cfg: DictConfig, metrics: dict) -> None:
    """Hyperparameters with the final metrics to every logger (TensorBoard: the HParams view)."""
    params, final = run_hparams(cfg), final_metrics(metrics)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, final)
        else:
            logger.log_hyperparams(params)
            logger.log_metrics(final)
        logger.save()
