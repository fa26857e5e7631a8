"""Optuna search behind `seglab-train -m hparams_search=...`, resumable and failure-tolerant.

hydra-optuna-sweeper 1.3.0 (its last release; it needs optuna<3) runs `n_trials` more trials
on every rerun, numbers job folders from 0 again, leaves a killed search's trials RUNNING and
ends with a traceback when a job returns NaN (optuna 2.10's `tell` refuses NaN). This subclass
keeps its config keys and search-space handling and changes the loop: `n_trials` is the
study's total, job folder N holds trial N, a failed job is a FAIL trial, and the best trial
is printed and saved as `<sweep dir>/best.yaml`.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

import optuna
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import Trial, TrialState

from seglab.runs.results import read_metrics, write_metrics_json

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: the search stopped during this trial (marked failed on resume)"


def stop_search(message: str) -> NoReturn:
    """End the search with one line (the study keeps every finished trial)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def as_score(value: Any) -> float | None:
    """`value` as a finite float; None (a failed trial) for None, NaN or a non-number."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def job_score(ret: JobReturn) -> tuple[float | None, str]:
    """The job's returned metric, or None and why not: the job raised, or returned no finite
    number (seglab's jobs catch their own errors and return NaN)."""
    try:
        value = ret.return_value
    except Exception as error:  # return_value re-raises whatever the job raised
        return None, f"raised {type(error).__name__}: {error}"
    score = as_score(value)
    return score, "" if score is not None else f"returned {value!r}"


def tell(study: optuna.Study, trial: Trial | int, score: float | None) -> None:
    """Store a score, or a failure when there is none. GridSampler calls `study.stop()` after
    its last grid point, which raises outside `study.optimize` once the result is stored."""
    state = TrialState.FAIL if score is None else TrialState.COMPLETE
    try:
        study.tell(trial, state=state, values=None if score is None else [score])
    except RuntimeError as error:
        if "`Study.stop`" not in str(error):
            raise


def settle_stale_trials(study: optuna.Study, sweep_dir: str, metric: str | None) -> None:
    """The trials an interrupted search left RUNNING become FAIL, and their job folder's
    metrics.json says so; a job that had completed is scored from that file instead."""
    stale = [trial.number for trial in study.get_trials(deepcopy=False)
             if trial.state == TrialState.RUNNING]
    for number in stale:
        path = Path(sweep_dir) / str(number) / "metrics.json"
        saved = read_metrics(path) or {}
        score = as_score(saved.get(metric)) if saved.get("status") == "completed" else None
        tell(study, number, score)
        if score is None and path.parent.is_dir():
            write_metrics_json(path, {**saved, "status": "failed", "error": INTERRUPTED})
        outcome = "marked failed" if score is None else f"scored {score} from {path}"
        log.warning(f"trial {number} was left running by an interrupted search: {outcome}")


def search_summary(study: optuna.Study, metric: str | None, sweep_dir: str) -> dict[str, Any]:
    """What best.yaml holds: the best trial's parameters and score, and the trial counts."""
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    return {
        "metric": metric,
        "direction": study.direction.name.lower(),
        "value": best.value,
        "trial": best.number,
        "job_dir": str(Path(sweep_dir) / str(best.number)),
        "params": dict(best.params),
        "trials": {"complete": sum(t.state == TrialState.COMPLETE for t in trials),
                   "failed": sum(t.state == TrialState.FAIL for t in trials)},
    }


class ResumableOptunaSweeper(OptunaSweeperImpl):
    """The published sweeper, with `n_trials` counted over the whole study (failed trials
    included, so a choice that always fails cannot make a search run forever) and job folder
    numbers equal to trial numbers, so a rerun continues an interrupted search in place."""

    def sweep(self, arguments: list[str]) -> None:
        directions = self._get_directions()
        if len(directions) != 1:
            stop_search("seglab searches one metric (optimized_metric): set "
                        f"hydra.sweeper.direction to maximize or minimize, not {directions}")
        space, fixed = self._search_space(arguments)
        Path(self.sweep_dir).mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage,
                                    sampler=self._build_sampler(space),
                                    direction=directions[0], load_if_exists=True)
        remaining = self._resume(study)
        while remaining > 0:
            batch = [study.ask() for _ in range(min(self.n_jobs, remaining))]
            overrides = self._configure_trials(batch, space, fixed)
            returns = self.launcher.launch(overrides, initial_job_idx=batch[0].number)
            self._tell_batch(study, batch, returns)
            remaining -= len(batch)
        self._report(study)

    def _search_space(self, arguments: list[str]) -> tuple[dict[str, BaseDistribution],
                                                            dict[str, Any]]:
        """Distributions from `hydra.sweeper.params` (or the deprecated `search_space`) and the
        command line; a plain `key=value` on the command line fixes that key."""
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments])
        space = {**(self.search_space_distributions or {}), **distributions}
        return {key: value for key, value in space.items() if key not in fixed}, fixed

    def _build_sampler(self, space: dict[str, BaseDistribution]) -> optuna.samplers.BaseSampler:
        """The configured sampler; GridSampler gets the grid and caps `n_trials` at its size."""
        if not (isinstance(self.sampler, functools.partial)
                and self.sampler.func is optuna.samplers.GridSampler):
            return self.sampler
        grid = {name: self._to_grid_sampler_choices(dist) for name, dist in space.items()}
        self.n_trials = min(self.n_trials, math.prod(len(choices) for choices in grid.values()))
        return self.sampler(grid)

    def _resume(self, study: optuna.Study) -> int:
        """Settle what an interrupted search left running; the number of trials to run."""
        settle_stale_trials(study, self.sweep_dir, self.config.get("optimized_metric"))
        done = len(study.get_trials(deepcopy=False))
        if done:
            # A seeded sampler would otherwise replay the first trials' random draws.
            study.sampler.reseed_rng()
            log.info(f"resuming study '{study.study_name}' ({self.storage}): {done} of "
                     f"{self.n_trials} trials done, job folders continue at {done}")
        return max(self.n_trials - done, 0)

    def _tell_batch(self, study: optuna.Study, batch: list[Trial],
                    returns: list[JobReturn]) -> None:
        """Store each job's score; stop when the batch failed beyond `max_failure_rate`."""
        failed = []
        for trial, ret in zip(batch, returns, strict=True):
            score, why = job_score(ret)
            tell(study, trial, score)
            if score is None:
                failed.append(trial.number)
                log.warning(f"trial {trial.number} failed ({why}); see "
                            f"{Path(self.sweep_dir) / str(trial.number) / 'metrics.json'}")
        if len(failed) / len(batch) > self.max_failure_rate:
            stop_search(f"trials {failed} failed: more than hydra.sweeper.max_failure_rate="
                        f"{self.max_failure_rate} of a batch of {len(batch)}; rerun the same "
                        "command to go on")

    def _report(self, study: optuna.Study) -> None:
        """Print the best trial as one block and save it as best.yaml in the sweep folder."""
        trials = study.get_trials(deepcopy=False)
        if not any(trial.state == TrialState.COMPLETE for trial in trials):
            stop_search(f"no trial of {len(trials)} completed; see the metrics.json files in "
                        f"{self.sweep_dir}")
        summary = OmegaConf.create(search_summary(study, self.config.get("optimized_metric"),
                                                  self.sweep_dir))
        path = Path(self.sweep_dir) / "best.yaml"
        OmegaConf.save(summary, path)
        print(f"\nbest of {len(trials)} trials, saved to {path}:\n{OmegaConf.to_yaml(summary)}",
              end="", flush=True)
