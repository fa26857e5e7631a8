"""Callbacks that leave per-epoch results in the run folder or the experiment logger."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from seglab.viz import plot_curves, predict_samples, prediction_grid

PREDICTIONS_TAG = "val/predictions"

log = logging.getLogger(__name__)


class EpochHistory(Callback):
    """Writes `metrics.csv` (one row per epoch: every logged epoch metric and the learning
    rate of each parameter group at the epoch's end) and `curves.png`.

    Lightning calls callbacks' `on_train_epoch_end` before the module's, where the train
    scores are logged, so an epoch's row is recorded when the next epoch starts or when
    training ends.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.rows: list[dict] = []

    def _record(self, trainer: Trainer) -> None:
        """Append the row of the last completed epoch, if not recorded yet (one process writes)."""
        if not trainer.is_global_zero:
            return
        completed = trainer.fit_loop.epoch_progress.current.completed
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if value.numel() == 1 and not key.endswith("_step")}
        if len(self.rows) >= completed or "train/loss" not in metrics:
            return
        learning_rates = {f"lr/{group.get('name', i)}": group["lr"]
                          for i, group in enumerate(trainer.optimizers[0].param_groups)}
        self.rows.append({"epoch": completed - 1, **metrics, **learning_rates})
        self._write()

    def _write(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        columns = ["epoch"] + sorted({key for row in self.rows for key in row} - {"epoch"})
        with open(self.output_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({key: "" if isinstance(value, float) and math.isnan(value)
                                 else value for key, value in row.items()})
        plot_curves(self.rows, self.output_dir / "curves.png")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._record(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._record(trainer)

    def state_dict(self) -> dict:
        """The rows so far travel in checkpoints: a resumed run keeps its earlier epochs."""
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))


class UnfreezeEncoder(Callback):
    """Gradual unfreezing: a network built with `freeze_encoder` starts training its encoder at
    epoch `at_epoch`, at the optimizer's learning rate times `optimizer.encoder_lr_mult`."""

    def __init__(self, at_epoch: int | None = None) -> None:
        if at_epoch is not None and (not isinstance(at_epoch, int) or at_epoch < 0):
            raise ValueError(f"callbacks.unfreeze_encoder.at_epoch must be a non-negative "
                             f"integer or null, got {at_epoch!r}")
        self.at_epoch = at_epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        net = pl_module.net
        if self.at_epoch is None or trainer.current_epoch < self.at_epoch \
                or not net.encoder_frozen:
            return
        net.unfreeze_encoder()
        optimizer = trainer.optimizers[0]
        group = pl_module.encoder_param_group()
        group.setdefault("lr", optimizer.defaults["lr"] * pl_module.encoder_lr_mult)
        optimizer.add_param_group(group)
        group["initial_lr"] = group["lr"]
        for config in trainer.lr_scheduler_configs:  # per-group state of the schedulers
            for name in ("base_lrs", "min_lrs"):
                values = getattr(config.scheduler, name, None)
                if isinstance(values, list) and len(values) < len(optimizer.param_groups):
                    values.append(group["lr"] if name == "base_lrs" else values[-1])
        log.info("epoch %d: encoder unfrozen, training at lr %g", trainer.current_epoch,
                 group["lr"])


def wandb_payload(samples: Sequence[dict], class_names: Sequence[str], ignore_index: int,
                  epoch: int, global_step: int) -> dict:
    """The `experiment.log` record: each sample (from `predict_samples`) as a `wandb.Image`
    with its prediction and ground truth as switchable mask overlays."""
    import wandb  # only runs that log to wandb pay for the import

    labels = dict(enumerate(class_names))
    images = [wandb.Image(sample["image"], caption=sample["id"], masks={
        "prediction": {"mask_data": sample["prediction"], "class_labels": labels},
        "ground_truth": {"mask_data": sample["mask"],
                         "class_labels": {**labels, ignore_index: "ignore"}},
    }) for sample in samples]
    return {PREDICTIONS_TAG: images, "epoch": epoch, "trainer/global_step": global_step}


class PredictionImages(Callback):
    """Image | ground truth | prediction of the first `count` val samples (the same ones each
    time) to the TensorBoard and wandb loggers every `every_n_epochs`-th validation; 0: never."""

    def __init__(self, every_n_epochs: int | None = 1, count: int = 4) -> None:
        if every_n_epochs is not None and (not isinstance(every_n_epochs, int)
                                           or every_n_epochs < 0):
            raise ValueError(f"callbacks.prediction_images.every_n_epochs must be a "
                             f"non-negative integer or null, got {every_n_epochs!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"callbacks.prediction_images.count must be a positive integer, "
                             f"got {count!r}")
        self.every_n_epochs = every_n_epochs or 0
        self.count = count
        self.validations = 0

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.every_n_epochs or trainer.sanity_checking:
            return
        self.validations += 1
        loggers = [logger for logger in trainer.loggers
                   if isinstance(logger, TensorBoardLogger | WandbLogger)]
        if self.validations % self.every_n_epochs or not loggers or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        samples = predict_samples(pl_module.net, datamodule.split("val"), self.count,
                                  datamodule.prepare_images)
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):
                grid = prediction_grid(samples, np.asarray(datamodule.palette, dtype=np.uint8),
                                       datamodule.ignore_index)
                logger.experiment.add_image(PREDICTIONS_TAG, grid,
                                            global_step=trainer.current_epoch,
                                            dataformats="HWC")
            else:
                logger.experiment.log(wandb_payload(samples, pl_module.class_names,
                                                    datamodule.ignore_index,
                                                    trainer.current_epoch, trainer.global_step))
