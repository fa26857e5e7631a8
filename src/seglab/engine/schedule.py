"""Learning-rate schedules whose length is the run's own: set once the Trainer knows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lightning import Trainer
from torch.optim import Optimizer


@dataclass
class SchedulerSpec:
    """A scheduler partial plus how Lightning should step it.

    `horizon_arg`, when set, names the constructor argument (e.g. `total_iters`, `T_max`) that
    receives the run's total number of steps (`interval: step`) or epochs (`interval: epoch`).
    `monitor` names the logged metric a plateau scheduler watches.
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
                                 "trainer.max_epochs (or use scheduler=none / plateau)")
            options[self.horizon_arg] = int(horizon)
        config = {"scheduler": self.factory(optimizer, **options), "interval": self.interval}
        if self.monitor is not None:
            config["monitor"] = self.monitor
        return config
