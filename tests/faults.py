"""Faults injected into runs by the tests, through the config (`+callbacks.kill=...`)."""

import faulthandler
import os
import signal
from pathlib import Path

import torch
from lightning import Callback


def _segfault() -> None:
    faulthandler._sigsegv()  # a real SIGSEGV, as native code would raise it


# how a process dies: with no chance to clean up, as a crash in native code or the OOM killer
DEATHS = {"kill": lambda: os.kill(os.getpid(), signal.SIGKILL), "abort": os.abort,
          "segfault": _segfault}


# the coordinates that name a moment at each place KillAt can strike
COORDINATES = {"train_epoch_start": ("epoch",), "train_batch": ("step",),
               "validation_batch": ("epoch", "batch"), "test_batch": ("batch",)}


class KillAt(Callback):
    """Kill this process at one moment of a run, once per run folder (its resumed run goes
    on): `where` is "train_epoch_start" (epoch `epoch` starting), "train_batch" (the end of
    training step `step`, before that step's checkpoint is written), "validation_batch" (the
    end of validation batch `batch` of epoch `epoch`) or "test_batch" (the end of test batch
    `batch`); `how` is one of DEATHS (SIGKILL by default). Under DDP global rank zero dies
    (the other processes then fail at their next collective): a process that reached the
    moment first would otherwise take the kill and leave rank zero to fail instead."""

    def __init__(self, where: str, step: int = 0, epoch: int = 0, batch: int = 0,
                 how: str = "kill") -> None:
        self.where, self.step, self.epoch, self.batch = where, step, epoch, batch
        self.die = DEATHS[how]

    def _strike(self, trainer, where: str, batch: int = 0) -> None:
        now = {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch": batch}
        if where != self.where or trainer.sanity_checking or trainer.global_rank != 0 or \
                any(getattr(self, key) != now[key] for key in COORDINATES[where]):
            return
        mark = Path(trainer.default_root_dir) / "killed-once"
        if not mark.exists():
            mark.touch()
            self.die()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._strike(trainer, "train_epoch_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._strike(trainer, "train_batch")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        self._strike(trainer, "validation_batch", batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                          dataloader_idx=0) -> None:
        self._strike(trainer, "test_batch", batch_idx)


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
