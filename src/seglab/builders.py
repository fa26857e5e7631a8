"""Build each piece of a run from the composed config; train and eval share these."""

from __future__ import annotations

from hydra.utils import instantiate
from lightning import Callback, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from seglab.data.datamodule import SegmentationDataModule
from seglab.module import SegmentationModule


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    return instantiate(cfg.data)


def build_module(cfg: DictConfig, class_names: list[str]) -> SegmentationModule:
    """The LightningModule with its network, loss, optimizer and scheduler from config."""
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    encoder_lr_mult = optimizer.pop("encoder_lr_mult", 1.0)
    return SegmentationModule(
        net=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        class_names=class_names,
        ignore_index=cfg.data.ignore_index,
        encoder_lr_mult=encoder_lr_mult,
    )


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    return [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    return [instantiate(node) for node in (cfg.get("logger") or {}).values()]


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> Trainer:
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
