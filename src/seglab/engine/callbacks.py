"""Callbacks that leave per-epoch (or per-validation) results in the run folder or the
experiment logger."""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from seglab.engine.plots import plot_curves, predict_samples, prediction_grid
from seglab.engine.schedule import validates_by_steps
from seglab.runs.crashes import heartbeat
from seglab.runs.results import read_metrics, write_metrics_json

PREDICTIONS_TAG = "val/predictions"

log = logging.getLogger(__name__)


class EpochHistory(Callback):
    """Writes `metrics.csv` (one row per epoch: every logged epoch metric and the learning
    rate of each parameter group at the epoch's end) and `curves.png`.

    Lightning calls callbacks' `on_train_epoch_end` before the module's, where the train
    scores are logged, so an epoch's row is recorded when the next epoch starts or when
    training ends, or when the epoch-end checkpoint is written (after the module's hook), so
    that the checkpoint holds it: a run resumed from there starts with the next epoch.
    A run that validates by steps gets one row per validation instead, with its `step`,
    recorded at the validation's end, before that validation's checkpoints are written.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.rows: list[dict] = []

    def _record(self, trainer: Trainer, completed: int | None = None) -> None:
        """Append the row of the last completed epoch (or of epoch `completed` - 1), if not
        recorded yet (one process writes)."""
        if not trainer.is_global_zero or validates_by_steps(trainer):
            return
        if completed is None:
            completed = trainer.fit_loop.epoch_progress.current.completed
        if len(self.rows) < completed:
            self._append(trainer, {"epoch": completed - 1})

    def _append(self, trainer: Trainer, row: dict) -> None:
        """`row` with every logged epoch metric and the learning rates, once the train scores
        are logged."""
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if value.numel() == 1 and not key.endswith("_step")}
        if "train/loss" not in metrics:
            return
        learning_rates = {f"lr/{group.get('name', i)}": group["lr"]
                          for i, group in enumerate(trainer.optimizers[0].param_groups)}
        self.rows.append({**row, **metrics, **learning_rates})
        self._write()

    def _write(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        first = [key for key in ("step", "epoch") if key in self.rows[0]]
        columns = first + sorted({key for row in self.rows for key in row} - set(first))
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

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """By steps: this validation's row (a resumed run does not repeat a recorded one)."""
        step = trainer.global_step
        if trainer.is_global_zero and validates_by_steps(trainer) and \
                not trainer.sanity_checking and (not self.rows or self.rows[-1]["step"] < step):
            self._append(trainer, {"step": step, "epoch": trainer.current_epoch})

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict) -> None:
        """At an epoch's end (its end hooks under way: processed, not yet completed) the epoch's
        row goes into the checkpoint with the rows before it."""
        progress = trainer.fit_loop.epoch_progress.current
        if progress.processed > progress.completed and not validates_by_steps(trainer):
            self._record(trainer, completed=progress.processed)
            checkpoint["callbacks"][self.state_key] = self.state_dict()

    def state_dict(self) -> dict:
        """The rows so far travel in checkpoints: a resumed run keeps its earlier epochs."""
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))


class StepCheckpoint(ModelCheckpoint):
    """`last.ckpt` every `every_n_train_steps` training steps, so a killed run resumes close to
    where it stopped; not at an epoch's last step, nor at a step a validation follows (by
    steps). There, the validation is still to run (the checkpoint written at its end follows),
    yet Lightning resumes such a checkpoint as if the validation had run and skips it; the
    run resumes from the checkpoint before instead, and repeats the same steps."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if batch_idx + 1 < trainer.num_training_batches and not validation_follows(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def validation_follows(trainer: Trainer) -> bool:
    """Whether a run that validates by steps validates after the training batch now ending
    (every `val_check_interval` batches counted over the run, as Lightning counts them)."""
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.ready
    return validates_by_steps(trainer) and batches % trainer.val_check_batch == 0


class Heartbeat(Callback):
    """The run's sign of life in metrics.json while it trains (`heartbeat`: time, step, epoch),
    at the first training step's end, then every `every_seconds` and at each validation's end:
    a run whose process dies says how far it got (seglab.runs.crashes)."""

    def __init__(self, output_dir: str, every_seconds: float = 30.0) -> None:
        self.record = Path(output_dir) / "metrics.json"
        self.every_seconds = every_seconds
        self.last: float | None = None

    def _beat(self, trainer: Trainer, now: bool = False) -> None:
        clock = time.monotonic()
        if not trainer.is_global_zero or trainer.sanity_checking or (
                not now and self.last is not None and clock - self.last < self.every_seconds):
            return
        self.last = clock
        running = read_metrics(self.record)
        if running is not None and running.get("status") == "running":
            write_metrics_json(self.record, {**running, "heartbeat": heartbeat(
                trainer.global_step, trainer.current_epoch)})

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self._beat(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._beat(trainer, now=True)


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
                logger.experiment.add_image(PREDICTIONS_TAG, grid, dataformats="HWC",
                                            global_step=trainer.global_step
                                            if validates_by_steps(trainer)
                                            else trainer.current_epoch)
            else:
                logger.experiment.log(wandb_payload(samples, pl_module.class_names,
                                                    datamodule.ignore_index,
                                                    trainer.current_epoch, trainer.global_step))
