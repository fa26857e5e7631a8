"""Faults injected into runs by the tests, through the config (`+callbacks.kill=...`)."""

import os
import signal

import torch
from lightning import Callback


class KillAtStep(Callback):
    """SIGKILL this process at the end of training step `step` of a fresh run (not of a run
    resumed from a checkpoint): a crash with no chance to clean up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonWeightsAtStep(Callback):
    """At the end of training step `step`, copy best.ckpt's bytes aside (for the test to
    compare) and fill one weight with NaN: the next step's loss is NaN, as in a diverging run."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.best_before: bytes | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        self.best_before = open(trainer.checkpoint_callback.best_model_path, "rb").read()
        with torch.no_grad():
            next(pl_module.net.parameters()).fill_(float("nan"))
