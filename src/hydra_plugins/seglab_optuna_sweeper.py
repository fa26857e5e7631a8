"""seglab's Optuna sweeper as a Hydra plugin (Hydra finds plugins only in the `hydra_plugins`
package): `hydra/sweeper=optuna`, its samplers (`hydra/sweeper/sampler=tpe|random|cmaes|
nsgaii|qmc|gp|grid`) and pruners (`hydra/sweeper/pruner=none|median|percentile|hyperband|
successive_halving`). The keys are the published hydra-optuna-sweeper's, plus `pruner`; the
search itself (seglab.sweeps.search) imports Optuna when a search starts, so other commands
never do."""

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

SWEEPER = {
    "_target_": "hydra_plugins.seglab_optuna_sweeper.SeglabOptunaSweeper",
    "_recursive_": False,  # the sampler and pruner are built in each worker, from their config
    "defaults": [{"sampler": "tpe"}, {"pruner": "none"}, "_self_"],
    "direction": "minimize",
    "study_name": None,
    # null: an Optuna journal file in the sweep folder; or a database URL
    "storage": None,
    "n_trials": 20,       # the study's total, failed and pruned trials included
    "n_jobs": 1,          # workers: trials running at once
    "max_failure_rate": 0.0,
    "params": None,
    "custom_search_space": None,
}
SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10,
            "multivariate": False},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None,
              "n_startup_trials": 1},
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "seed": None,
               "population_size": 50},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None, "qmc_type": "sobol"},
    "gp": {"_target_": "optuna.samplers.GPSampler", "seed": None, "n_startup_trials": 10},
    "grid": {"_target_": "optuna.samplers.GridSampler", "seed": None},
}
# The pruners' main parameters, at Optuna's defaults. A trial's step is its epoch (its training
# step for runs counted in iterations, trainer.max_steps).
PRUNERS = {
    "none": {"_target_": "optuna.pruners.NopPruner"},
    "median": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 5,
               "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1},
    "percentile": {"_target_": "optuna.pruners.PercentilePruner", "percentile": 25.0,
                   "n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1,
                   "n_min_trials": 1},
    "hyperband": {"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 1,
                  "max_resource": "auto", "reduction_factor": 3},
    "successive_halving": {"_target_": "optuna.pruners.SuccessiveHalvingPruner",
                           "min_resource": "auto", "reduction_factor": 4,
                           "min_early_stopping_rate": 0},
}

store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="optuna", node=SWEEPER, provider="seglab")
for name, node in SAMPLERS.items():
    store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="seglab")
for name, node in PRUNERS.items():
    store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="seglab")


class SeglabOptunaSweeper(Sweeper):
    """`hydra.sweeper._target_` of `hydra/sweeper=optuna` (seglab.sweeps.search)."""

    def __init__(self, **config: Any) -> None:
        from seglab.sweeps.search import OptunaSearch

        self.search = OptunaSearch(**config)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function,
                          config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.search.sweep(arguments)
