"""Learning-rate schedules whose length is the run's own: set once the Trainer knows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lightning import Trainer
from torch.optim import Optimizer

from seglab.core.errors import ConfigError


def validates_by_steps(trainer: Trainer) -> bool:
    """Whether the run validates every `val_check_interval` training batches counted over the
    whole run (`check_val_every_n_epoch: null`, as runs counted in iterations do) rather than
    once per epoch: its history rows, train scores and plateau steps then follow validations."""
    return trainer.check_val_every_n_epoch is None


@dataclass
class SchedulerSpec:
    """A scheduler partial plus how Lightning should step it.

    `horizon_arg`, when set, names the constructor argument (e.g. `total_iters`, `T_max`) that
    receives the run's total number of steps (`interval: step`) or epochs (`interval: epoch`).
    `monitor` names the logged metric a plateau scheduler watches; in a run that validates
    by steps the module steps it at each validation's end, so its patience counts
    validations, not epochs that end between them.
    """

    factory: Callable[..., object]
    interval: str = "step"
    horizon_arg: str | None = None
    monitor: str | None = None

    def __post_init__(self) -> None:
        if self.interval not in ("step", "epoch"):
            raise ValueError(f"scheduler.interval must be 'step' or 'epoch', got {self.interval!r}")

    def build(self, optimizer: Optimizer, trainer: Trainer) -> dict:
        """The `lr_scheduler` dict that `configure_optimizers` returns."""
        options = {}
        if self.horizon_arg is not None:
            horizon = (trainer.estimated_stepping_batches if self.interval == "step"
                       else trainer.max_epochs)
            if horizon is None or horizon < 1 or horizon == float("inf"):
                raise ValueError(f"scheduler {self.horizon_arg} needs a finite run length; set "
                                 "trainer.max_epochs or trainer.max_steps (or use "
                                 "scheduler=none / plateau)")
            options[self.horizon_arg] = int(horizon)
        config = {"scheduler": self.factory(optimizer, **options), "interval": self.interval}
        if self.monitor is not None:
            by_steps = validates_by_steps(trainer)
            if by_steps and not self.monitor.startswith("val/"):
                raise ConfigError(f"scheduler.monitor = {self.monitor}: a run that validates by "
                                  "steps steps this schedule at each validation; expected a "
                                  "val/ score, such as val/mIoU")
            # by steps, the first epochs may end before the first validation: nothing to watch
            config.update(monitor=self.monitor, strict=not by_steps)
        return config
