"""Faults injected into runs by the tests, through the config (`+callbacks.kill=...`)."""

import os
import signal

from lightning import Callback


class KillAtStep(Callback):
    """SIGKILL this process at the end of training step `step` of a fresh run (not of a run
    resumed from a checkpoint): a crash with no chance to clean up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.ckpt_path is None and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
