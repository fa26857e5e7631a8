"""Build each piece of a run from the composed config; train and eval share these."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning import Callback, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from seglab.core.checkpoints import trusted
from seglab.core.errors import ConfigError
from seglab.data.checks import median_frequency_weights
from seglab.data.datamodule import SegmentationDataModule
from seglab.engine import notices  # noqa: F401 (drops the notices a user cannot act on)
from seglab.engine.checkpoint_io import AtomicCheckpointIO
from seglab.engine.module import SegmentationModule


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    return instantiate(cfg.data)


def resolve_class_weights(loss: dict, datamodule: SegmentationDataModule | None) -> dict:
    """Replace every `class_weights: auto` in the loss config with median-frequency weights of
    the training split (counted once per file and cached with the data checks)."""
    weights = None

    def replace(node):
        nonlocal weights
        if not isinstance(node, dict):
            return node
        resolved = {}
        for key, value in node.items():
            if key == "class_weights" and value == "auto":
                if datamodule is None:
                    raise ConfigError("loss.class_weights=auto needs the training data")
                if weights is None:
                    weights = median_frequency_weights(datamodule.split_report("train"))
                resolved[key] = weights
            else:
                resolved[key] = replace(value)
        return resolved

    return replace(loss)


def build_module(cfg: DictConfig, class_names: list[str],
                 datamodule: SegmentationDataModule | None = None) -> SegmentationModule:
    """The LightningModule with its network, loss, optimizer and scheduler from config;
    `datamodule` is needed for `loss.class_weights: auto`, and gives the sliding window of
    `data.eval_mode: slide` (tiles run `data.batch_size` at a time); without it validation
    and test take whole images."""
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    encoder_lr_mult = optimizer.pop("encoder_lr_mult", 1.0)
    module = SegmentationModule(
        net=instantiate(cfg.model, trust_weights=trusted(cfg)),
        loss=instantiate(resolve_class_weights(OmegaConf.to_container(cfg.loss, resolve=True),
                                               datamodule)),
        optimizer=instantiate(optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.scheduler else None,
        class_names=class_names,
        ignore_index=cfg.data.ignore_index,
        encoder_lr_mult=encoder_lr_mult,
        slide_window=datamodule.slide_window if datamodule is not None else None,
        tiles_per_pass=cfg.data.batch_size,
    )
    module.example_input_array = torch.zeros(1, 3, *cfg.data.input_size)  # summary's FLOPs
    return module


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    return [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    return [instantiate(node) for node in (cfg.get("logger") or {}).values()]


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger],
                  already_read: MutableMapping[Path, dict] | None = None) -> Trainer:
    """The Lightning Trainer, saving checkpoints atomically (a kill mid-save keeps the old)
    and handed the checkpoints the command has read already ({resolved path: contents},
    emptied as Lightning takes them) instead of reading them again."""
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       plugins=[AtomicCheckpointIO(already_read)])
