"""Optuna search behind `seglab-train -m hparams_search=...`: seglab's own Hydra sweeper on the
current Optuna, reading the published hydra-optuna-sweeper's keys (`direction`, `study_name`,
`storage`, `n_trials`, `n_jobs`, `sampler`, `params`, `custom_search_space`,
`max_failure_rate`), plus `pruner`.

The published sweeper (1.3.0, its last release) holds Optuna below 3, launches `n_jobs` trials
and waits for the slowest before the next batch, and cannot stop a bad trial early. Here
`n_jobs` workers share the study (seglab.sweeps.workers), every validation reports to the trial
and the pruner may stop it (seglab.engine.pruning). `n_trials` is the study's total, job folder
N holds trial N, a rerun of the same command resumes the study, and the best completed trial is
printed and saved as `<sweep dir>/best.yaml`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import TrialState

from seglab.sweeps.search_space import SearchSpaceError, params_lines, parse_params
from seglab.sweeps.study import (
    StudyError,
    build_pruner,
    build_sampler,
    grid_size,
    open_storage,
    prunes,
    settle_stale_trials,
    storage_spec,
)
from seglab.sweeps.workers import (
    SearchPlan,
    WorkerTask,
    custom_search_space,
    failure_share,
    run_local_workers,
    run_worker,
    worker_overrides,
)

log = logging.getLogger(__name__)
DEFAULT_STUDY_NAME = "search"


def stop_search(message: str) -> NoReturn:
    """End the search with one line (the study keeps every finished trial)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def search_summary(study: optuna.Study, metric: str | None, sweep_dir: Path) -> dict[str, Any]:
    """What best.yaml holds: the best completed trial's parameters and score, and the counts."""
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    count = {state: sum(trial.state == state for trial in trials) for state in TrialState}
    return {
        "metric": metric,
        "direction": study.direction.name.lower(),
        "value": best.value,
        "trial": best.number,
        "job_dir": str(sweep_dir / str(best.number)),
        "params": dict(best.params),
        "trials": {"complete": count[TrialState.COMPLETE], "pruned": count[TrialState.PRUNED],
                   "failed": count[TrialState.FAIL]},
    }


class OptunaSearch:
    """The sweeper's work; `hydra_plugins.seglab_optuna_sweeper` hands Hydra's calls to it."""

    def __init__(self, direction: Any = "minimize", study_name: str | None = None,
                 storage: str | None = None, n_trials: int = 20, n_jobs: int = 1,
                 max_failure_rate: float = 0.0, sampler: Any = None, pruner: Any = None,
                 params: dict[str, str] | None = None, custom_search_space: str | None = None,
                 search_space: Any = None, **unknown: Any) -> None:
        if unknown:
            stop_search(f"hydra.sweeper.{sorted(unknown)[0]}: not a key of the Optuna sweeper "
                        "(direction, study_name, storage, n_trials, n_jobs, max_failure_rate, "
                        "sampler, pruner, params, custom_search_space)")
        if search_space:
            stop_search("hydra.sweeper.search_space (deprecated by hydra-optuna-sweeper 1.2) "
                        "is not read: write the ranges in hydra.sweeper.params, e.g. "
                        "optimizer.lr: tag(log, interval(1e-4, 1e-1))")
        self.direction = direction
        self.study_name = study_name or DEFAULT_STUDY_NAME
        self.storage = storage
        self.n_trials = int(n_trials)
        self.n_jobs = max(int(n_jobs), 1)
        self.max_failure_rate = float(max_failure_rate)
        self.sampler = OmegaConf.to_container(sampler, resolve=True) \
            if isinstance(sampler, DictConfig) else dict(sampler or {})
        self.pruner = OmegaConf.to_container(pruner, resolve=True) \
            if isinstance(pruner, DictConfig) else pruner
        self.params = params
        self.custom_search_space = custom_search_space

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        try:
            plan = self._plan(arguments)
            study = optuna.create_study(study_name=plan.study_name,
                                        storage=open_storage(plan.storage),
                                        direction=plan.direction, load_if_exists=True)
        except (SearchSpaceError, StudyError) as error:
            stop_search(str(error))
        sweep_dir = Path(plan.sweep_dir)
        if study.direction.name.lower() != plan.direction:
            stop_search(f"study '{plan.study_name}' in {plan.storage} was made to "
                        f"{study.direction.name.lower()}, not {plan.direction}")
        settle_stale_trials(study, sweep_dir, plan.metric)
        done = len(study.get_trials(deepcopy=False))
        if done:
            log.info(f"resuming study '{plan.study_name}' ({plan.storage}): {done} of "
                     f"{plan.n_trials} trials there, job folders continue at {done}")
        workers = min(self.n_jobs, max(plan.n_trials - done, 0))
        if workers:
            self._run_workers(plan, workers)
            settle_stale_trials(study, sweep_dir, plan.metric)
        self._report(study, plan)

    def _plan(self, arguments: list[str]) -> SearchPlan:
        """Everything the workers need, checked here first: the search space, the sampler,
        custom_search_space and pruner (each built once to refuse a bad setting before any
        trial), the storage."""
        direction = self.direction
        if not isinstance(direction, str):
            direction = list(direction)
            if len(direction) != 1:
                stop_search("seglab searches one metric (optimized_metric): set "
                            f"hydra.sweeper.direction to maximize or minimize, not {direction}")
            direction = direction[0]
        direction = str(getattr(direction, "name", direction)).lower()
        if direction not in ("maximize", "minimize"):
            stop_search(f"hydra.sweeper.direction={direction}: expected maximize or minimize")
        space, fixed = parse_params([*params_lines(self.params), *arguments])
        build_sampler(self.sampler, space)
        custom_search_space(self.custom_search_space)
        metric = self.config.get("optimized_metric")
        if prunes(build_pruner(self.pruner)) and not str(metric or "").startswith("val/"):
            raise StudyError(f"hydra.sweeper.pruner: pruning follows the optimized metric at "
                             f"every validation, so optimized_metric must be a validation "
                             f"score (val/...), not {metric}")
        n_trials = self.n_trials
        points = grid_size(self.sampler, space)
        if points is not None:
            n_trials = min(n_trials, points)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        config = self.config.copy()
        with open_dict(config):  # resolved once: workers elsewhere, later, use the same folder
            config.hydra.sweep.dir = str(sweep_dir)
        return SearchPlan(
            storage=storage_spec(self.storage, sweep_dir), study_name=self.study_name,
            direction=direction, sampler=self.sampler, pruner=self.pruner, space=space,
            fixed=fixed, custom_search_space=self.custom_search_space, n_trials=n_trials,
            max_failure_rate=self.max_failure_rate, metric=metric, sweep_dir=str(sweep_dir),
            hydra_context=self.hydra_context, config=config, task_function=self.task_function)

    def _run_workers(self, plan: SearchPlan, count: int) -> None:
        """One worker here, several as local processes on Hydra's basic launcher, or each a
        job of the launcher the user picked."""
        if isinstance(self.launcher, BasicLauncher):
            if count == 1:
                run_worker(plan, 0)
            else:
                run_local_workers(plan, count)
            return
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=WorkerTask(plan), config=plan.config)
        try:
            launcher.launch(worker_overrides(plan, count), initial_job_idx=0)
        except Exception as error:  # a worker job died; the study keeps what the others did
            log.warning(f"a search worker ended abnormally: {type(error).__name__}: {error}")

    def _report(self, study: optuna.Study, plan: SearchPlan) -> None:
        """Stop on too many failures; print the best trial and save it as best.yaml."""
        trials = study.get_trials(deepcopy=False)
        share, failed = failure_share(study)
        if share > plan.max_failure_rate:
            stop_search(f"trials {failed} failed: more than hydra.sweeper.max_failure_rate="
                        f"{plan.max_failure_rate} of the study's finished trials; rerun the "
                        "same command to go on")
        if not any(trial.state == TrialState.COMPLETE for trial in trials):
            stop_search(f"no trial of {len(trials)} completed; see the metrics.json files in "
                        f"{plan.sweep_dir}")
        summary = OmegaConf.create(search_summary(study, plan.metric, Path(plan.sweep_dir)))
        path = Path(plan.sweep_dir) / "best.yaml"
        OmegaConf.save(summary, path)
        print(f"\nbest of {len(trials)} trials, saved to {path}:\n{OmegaConf.to_yaml(summary)}",
              end="", flush=True)
