"""The search's Optuna study: where it is stored, its sampler and pruner, and how a finished,
failed, pruned or interrupted trial is recorded in it.

Storage (`hydra.sweeper.storage`): null keeps the study in the sweep folder as an Optuna journal
file, `<sweep dir>/optuna.journal`, which every worker on this machine or on a shared file
system reaches; a database URL (sqlite:///..., postgresql://..., mysql://...) or another
journal file path may be given instead. A sweep folder of an earlier seglab search keeps its
SQLite `optuna.db`: the search resumes from it, its tables upgraded to this Optuna's schema after
a copy of the file is kept beside it.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import Trial, TrialState

from seglab.runs.crashes import may_be_alive, settled
from seglab.runs.results import read_metrics, write_metrics_json
from seglab.sweeps.dashboard import JOURNAL, SQLITE  # the study files of a sweep folder

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: the search stopped during this trial (marked failed on resume)"
PRUNERS = {"none": "optuna.pruners.NopPruner", "median": "optuna.pruners.MedianPruner",
           "percentile": "optuna.pruners.PercentilePruner",
           "hyperband": "optuna.pruners.HyperbandPruner",
           "successive_halving": "optuna.pruners.SuccessiveHalvingPruner"}


class StudyError(ValueError):
    """A study setting that cannot work, said in one line."""


def storage_spec(storage: str | None, sweep_dir: Path) -> str:
    """What `hydra.sweeper.storage` names: a database URL as given, or a journal file path
    (the sweep folder's journal for null; an earlier search's optuna.db if the folder has one)."""
    if storage:
        return str(storage)
    if (sweep_dir / SQLITE).is_file() and not (sweep_dir / JOURNAL).exists():
        return f"sqlite:///{sweep_dir / SQLITE}"
    return str(sweep_dir / JOURNAL)


def open_storage(spec: str) -> BaseStorage:
    """The storage `spec` names; an SQLite file of an older Optuna is upgraded first."""
    if "://" not in spec:
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(spec))
    if spec.startswith("sqlite:///"):
        upgrade_old_sqlite(spec)
    try:
        return RDBStorage(spec)
    except Exception as error:  # a wrong URL, a missing driver, a server that does not answer
        raise StudyError(f"hydra.sweeper.storage={spec}: {type(error).__name__}: "
                         f"{str(error).splitlines()[0]}") from None


def upgrade_old_sqlite(url: str) -> None:
    """An SQLite study written by an older Optuna (seglab's search used Optuna 2.10): keep a
    copy of the file, then upgrade its tables in place so the study resumes."""
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        return
    storage = RDBStorage(url, skip_compatibility_check=True)
    old, new = storage.get_current_version(), storage.get_head_version()
    storage.remove_session()
    storage.engine.dispose()
    if old == new:
        return
    backup = path.with_name(f"{path.name}.schema-{old}.bak")
    shutil.copy2(path, backup)
    try:
        RDBStorage(url, skip_compatibility_check=True).upgrade()
    except Exception as error:
        raise StudyError(f"{path}: a study of an older Optuna (schema {old}) that this Optuna "
                         f"could not upgrade ({type(error).__name__}: {error}); the original "
                         f"is kept as {backup}") from None
    log.info(f"{path}: upgraded the study from Optuna's schema {old} to {new} (the original is "
             f"kept as {backup})")


def build_sampler(config: DictConfig | dict, space: dict[str, BaseDistribution],
                  worker: int = 0) -> optuna.samplers.BaseSampler:
    """`hydra.sweeper.sampler` (`_target_` and its arguments). A seeded sampler gets seed+worker
    in worker `worker`, so parallel workers do not propose the same trials; GridSampler gets
    the grid of the search space."""
    config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    target = config.get("_target_", "")
    if config.get("seed") is not None and worker:
        config["seed"] = int(config["seed"]) + worker
    extra = {"search_space": grid(space)} if target.endswith("GridSampler") else {}
    try:
        return instantiate(config, **extra)
    except Exception as error:
        raise StudyError(f"hydra.sweeper.sampler ({target}): {one_cause(error)}") from None


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    """The grid GridSampler walks: each parameter's choices (choice(...) or an integer or
    stepped range(...))."""
    points = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            points[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) or getattr(dist, "step", None) is not None:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            points[name] = [dist.low + index * dist.step for index in range(count)]
        else:
            raise StudyError(f"hydra.sweeper.params.{name}: GridSampler needs choice(...) or "
                             f"range(...), not an interval ({dist})")
    return points


def grid_size(config: DictConfig | dict, space: dict[str, BaseDistribution]) -> int | None:
    """How many points GridSampler's grid has; None for other samplers."""
    if not str(dict(config).get("_target_", "")).endswith("GridSampler"):
        return None
    return math.prod(len(choices) for choices in grid(space).values())


def build_pruner(config: DictConfig | dict | str | None) -> optuna.pruners.BasePruner:
    """`hydra.sweeper.pruner`: a name (none, median, percentile, hyperband,
    successive_halving) or a mapping with `_target_` and the pruner's arguments."""
    if config is None or isinstance(config, str):
        name = config or "none"
        if name not in PRUNERS:
            raise StudyError(f"hydra.sweeper.pruner={name}: expected one of "
                             f"{', '.join(PRUNERS)} (or a mapping with _target_)")
        config = {"_target_": PRUNERS[name], **({"percentile": 25.0}
                                                 if name == "percentile" else {})}
    config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    try:
        return instantiate(config)
    except Exception as error:
        raise StudyError(f"hydra.sweeper.pruner ({config.get('_target_')}): "
                         f"{one_cause(error)}") from None


def prunes(pruner: optuna.pruners.BasePruner) -> bool:
    return not isinstance(pruner, optuna.pruners.NopPruner)


def one_cause(error: BaseException) -> str:
    """The innermost error's message, one line (Hydra wraps a constructor's error)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def as_score(value: Any) -> float | None:
    """`value` as a finite float; None (a failed trial) for None, NaN or a non-number."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def tell(study: optuna.Study, trial: Trial | int, state: TrialState,
         score: float | None = None) -> None:
    """Record how a trial ended (PRUNED takes its last reported value). GridSampler calls
    `study.stop()` after its last grid point, which raises outside `study.optimize` once the
    result is stored."""
    try:
        study.tell(trial, state=state, values=[score] if state == TrialState.COMPLETE else None)
    except RuntimeError as error:
        if "`Study.stop`" not in str(error):
            raise


def outcome(job_dir: Path, metric: str | None, returned: Any) -> tuple[TrialState, float | None]:
    """How a trial's job ended, from its metrics.json: pruned, completed with a finite score
    (its returned value, else the saved one), or failed."""
    saved = read_metrics(job_dir / "metrics.json") or {}
    if saved.get("status") == "pruned":
        return TrialState.PRUNED, None
    score = as_score(returned)
    if score is None and saved.get("status") == "completed" and metric:
        score = as_score(saved.get(metric))
    return (TrialState.FAIL, None) if score is None else (TrialState.COMPLETE, score)


def settle_stale_trials(study: optuna.Study, sweep_dir: Path, metric: str | None) -> None:
    """Trials left RUNNING by a worker that died (or a search that was stopped) are recorded
    from their job folder: completed or pruned as the job's metrics.json says, else failed,
    and that metrics.json says so. A trial whose job process still runs (another worker of this
    study) is left alone."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        job_dir = sweep_dir / str(trial.number)
        saved = read_metrics(job_dir / "metrics.json") or {}
        if may_be_alive(saved):
            continue
        saved = settled(job_dir, saved)
        state, score = outcome(job_dir, metric, None)
        tell(study, trial.number, state, score)
        if state == TrialState.FAIL and job_dir.is_dir():
            error = saved.get("error") if saved.get("status") == "crashed" else INTERRUPTED
            write_metrics_json(job_dir / "metrics.json",
                               {**saved, "status": "failed", "error": error})
        how = {TrialState.FAIL: "marked failed", TrialState.PRUNED: "pruned (its metrics.json)",
               TrialState.COMPLETE: f"scored {score} from its metrics.json"}[state]
        log.warning(f"trial {trial.number} was left running by a stopped worker: {how}")
