"""A search trial's intermediate values and pruning: at every validation the optimized metric
goes to the Optuna trial, and the study's pruner may stop the run there.

Rank zero (the search worker's process) reports and asks the pruner; under DDP its decision is
broadcast, so every process stops at the same validation."""

from __future__ import annotations

import math

from lightning import Callback, LightningModule, Trainer

from seglab.engine.schedule import validates_by_steps
from seglab.runs.search_trial import current


def report_step(trainer: Trainer) -> int:
    """The trial's step for this validation: the epoch for runs validated once per epoch, the
    training step for runs counted in iterations, so trials meet the pruner at the same step."""
    return trainer.global_step if validates_by_steps(trainer) else trainer.current_epoch


class TrialReport(Callback):
    """Report `metric` (a validation score, e.g. val/mIoU_best) to the trial; stop the run
    when the pruner says so, recording where in the trial's link."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.pruned = False  # on every process, once the pruner stopped the run

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        link = current()
        prune = False
        if trainer.is_global_zero and link is not None:
            value = pl_module.val_scores.get(self.metric)
            if value is not None and math.isfinite(value):
                step = report_step(trainer)
                link.trial.report(float(value), step)
                prune = link.trial.should_prune()
                if prune:
                    link.pruned = {"step": step, "epoch": trainer.current_epoch,
                                   "value": float(value)}
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned = trainer.should_stop = True
