"""Callbacks that leave per-epoch results in the run folder."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from seglab.viz import plot_curves

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
