"""seglab's Optuna sweeper as a Hydra plugin: Hydra instantiates sweepers only from the
`hydra_plugins` package. The search itself is `seglab.sweeps.search`, imported when a search starts
so that other commands never import optuna."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SeglabOptunaSweeper(Sweeper):
    """`hydra.sweeper._target_` of conf/hparams_search: the published Optuna sweeper's keys."""

    def __init__(self, **config: Any) -> None:
        from seglab.sweeps.search import ResumableOptunaSweeper

        self.sweeper = ResumableOptunaSweeper(**config)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function,
                           config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
