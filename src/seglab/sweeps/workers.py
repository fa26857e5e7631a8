"""Search workers, Optuna's distributed model: each worker asks the shared study for its next
trial, runs it as a Hydra job in `<sweep dir>/<trial number>`, records how it ended, and asks
again until the study holds `n_trials` trials. N workers keep N trials running, and a new one
starts as soon as one ends: there are no batches to wait for.

Workers run where the user's launcher puts them: in this process (one worker on Hydra's basic
launcher), in local processes forked from this one (several on the basic launcher), or as the
launcher's own jobs (`submitit_local`, `submitit_slurm`, `ray`), which then reach the study
through its storage. A worker killed mid-trial leaves that trial RUNNING with a job whose
process is gone; the search settles it (seglab.sweeps.study.settle_stale_trials).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict
from optuna.distributions import BaseDistribution
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import Trial, TrialState

from seglab.runs.search_trial import TrialLink, linked
from seglab.sweeps.study import (
    StudyError,
    build_pruner,
    build_sampler,
    one_cause,
    open_storage,
    outcome,
    tell,
)

log = logging.getLogger(__name__)
# one worker at a time counts the trials and asks for the next (Optuna adds ".lock": a lock file
# that works on network file systems, broken after 30 s if its holder died)
ASK_LOCK = ".optuna-ask"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class SearchPlan:
    """What every worker needs, picklable for the launchers that run workers elsewhere."""

    storage: str
    study_name: str
    direction: str
    sampler: dict[str, Any]
    pruner: dict[str, Any] | str | None
    space: dict[str, BaseDistribution]
    fixed: dict[str, str]
    custom_search_space: str | None
    n_trials: int
    max_failure_rate: float
    metric: str | None
    sweep_dir: str
    hydra_context: HydraContext
    config: DictConfig
    task_function: TaskFunction


def failure_share(study: optuna.Study) -> tuple[float, list[int]]:
    """The share of the study's finished trials that failed, and their numbers."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    failed = [trial.number for trial in finished if trial.state == TrialState.FAIL]
    return (len(failed) / len(finished) if finished else 0.0), failed


def next_trial(study: optuna.Study, plan: SearchPlan, lock: JournalFileOpenLock) -> Trial | None:
    """A new trial of the study, or None once it holds `n_trials` (every state counted, so a
    choice that always fails cannot make the search run forever)."""
    lock.acquire()
    try:
        if len(study.get_trials(deepcopy=False)) >= plan.n_trials:
            return None
        return study.ask(plan.space)
    finally:
        lock.release()


def custom_search_space(path: str | None) -> Callable[[DictConfig, Trial], Any] | None:
    """`hydra.sweeper.custom_search_space`: `module.function(cfg, trial)`, which may suggest
    more parameters (conditional ones) on the trial."""
    if not path:
        return None
    module, _, name = path.rpartition(".")
    try:
        function = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError) as error:
        raise StudyError(f"hydra.sweeper.custom_search_space={path}: {one_cause(error)}") from None
    if not callable(function):
        raise StudyError(f"hydra.sweeper.custom_search_space={path}: expected the dotted path of "
                         "a function(cfg, trial), e.g. my_package.search.extend")
    return function


def trial_overrides(trial: Trial, plan: SearchPlan) -> list[str]:
    """The trial's job overrides: its sampled parameters, then the fixed ones."""
    extend = custom_search_space(plan.custom_search_space)
    if extend is not None:
        extend(plan.config, trial)
    overlap = sorted(trial.params.keys() & plan.fixed.keys())
    if overlap:
        raise ValueError(f"parameters {overlap} are both searched (custom_search_space) and "
                         "fixed on the command line")

    def text(value: Any) -> str:
        return "null" if value is None else str(value)

    return [f"{key}={text(value)}" for key, value in {**trial.params, **plan.fixed}.items()]


def run_trial(plan: SearchPlan, trial: Trial, overrides: list[str]) -> JobReturn:
    """The trial's job, as Hydra's basic launcher runs a job: its config composed from the
    search's, its folder `<sweep dir>/<trial number>`, the trial linked for pruning."""
    log.info(f"\t#{trial.number} : {' '.join(filter_overrides(overrides))}")
    config = plan.hydra_context.config_loader.load_sweep_config(plan.config, overrides)
    with open_dict(config):
        config.hydra.job.id = f"trial_{trial.number}"
        config.hydra.job.num = trial.number
    with linked(TrialLink(trial, plan.metric or "")):
        ret = run_job(hydra_context=plan.hydra_context, task_function=plan.task_function,
                      config=config, job_dir_key="hydra.sweep.dir",
                      job_subdir_key="hydra.sweep.subdir")
    configure_log(plan.config.hydra.hydra_logging, plan.config.hydra.verbose)
    return ret


def returned_value(ret: JobReturn) -> Any:
    """The job's return value; None when the job raised (return_value re-raises it)."""
    try:
        return ret.return_value
    except Exception as error:
        log.warning(f"a trial's job raised {type(error).__name__}: {error}")
        return None


def run_worker(plan: SearchPlan, worker: int) -> int:
    """Ask, run and record trials until the study is full or fails too often; the number of
    trials this worker ran."""
    study = optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage),
                              sampler=build_sampler(plan.sampler, plan.space, worker),
                              pruner=build_pruner(plan.pruner))
    lock = JournalFileOpenLock(str(Path(plan.sweep_dir) / ASK_LOCK))
    ran = 0
    while (trial := next_trial(study, plan, lock)) is not None:
        trial.set_user_attr("worker", worker)
        try:
            overrides = trial_overrides(trial, plan)
        except Exception:
            tell(study, trial, TrialState.FAIL)
            raise
        ret = run_trial(plan, trial, overrides)
        job_dir = Path(plan.sweep_dir) / str(trial.number)
        state, score = outcome(job_dir, plan.metric, returned_value(ret))
        tell(study, trial, state, score)
        ran += 1
        if state == TrialState.FAIL:
            log.warning(f"trial {trial.number} failed; see {job_dir / 'metrics.json'}")
        share, _ = failure_share(study)
        if share > plan.max_failure_rate:
            break
    return ran


def _forked_worker(plan: SearchPlan, worker: int, singleton_state: dict) -> None:
    setup_globals()
    Singleton.set_state(singleton_state)
    configure_log(plan.config.hydra.hydra_logging, plan.config.hydra.verbose)
    run_worker(plan, worker)


def run_local_workers(plan: SearchPlan, count: int) -> None:
    """`count` workers in processes forked from this one (nothing to pickle: the task function
    and Hydra's state are inherited); waits for all, and goes on when one dies."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_forked_worker, name=f"search worker {worker}",
                                 args=(plan, worker, Singleton.get_state()))
                 for worker in range(count)]
    for process in processes:
        process.start()
    log.info(f"{count} search workers: processes {[process.pid for process in processes]}")
    for process in processes:
        process.join()
        code = process.exitcode
        if code:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            log.warning(f"{process.name} (pid {process.pid}) ended with {how}")


class WorkerTask:
    """The task function of a launcher's worker job: run worker `hydra.job.num`."""

    def __init__(self, plan: SearchPlan) -> None:
        self.plan = plan

    def __call__(self, cfg: DictConfig) -> int:
        return run_worker(self.plan, int(HydraConfig.get().job.num))


def worker_overrides(plan: SearchPlan, count: int) -> list[list[str]]:
    """Each launcher job's overrides: the command line's (Hydra composes a job's config from
    them) and a folder of its own beside the trials' (its log)."""
    fixed = [f"{key}={value}" for key, value in plan.fixed.items()]
    return [[*fixed, f"hydra.sweep.subdir=.workers/{worker}"] for worker in range(count)]
