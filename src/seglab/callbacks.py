"""Callbacks that leave per-epoch results in the run folder."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from seglab.viz import plot_curves


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
        """Append the row of the last completed epoch, if not recorded yet."""
        completed = trainer.fit_loop.epoch_progress.current.completed
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if value.numel() == 1 and not key.endswith("_step")}
        if len(self.rows) >= completed or "train/loss" not in metrics:
            return
        learning_rates = {f"lr/group{i}": group["lr"]
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
