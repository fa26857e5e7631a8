"""Optuna search (`hparams_search=synthetic_optuna`): seglab's sweeper on the current Optuna,
the published sweeper's keys, a resumable study in the sweep folder, failed and pruned trials,
parallel workers, best.yaml."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from conftest import BIN, TINY, run_cli
from hydra_plugins.seglab_optuna_sweeper import SAMPLERS
from seglab.runs.crashes import process_identity
from seglab.sweeps.search_space import SearchSpaceError, parse_params
from seglab.sweeps.study import (
    INTERRUPTED,
    StudyError,
    build_pruner,
    build_sampler,
    grid_size,
    open_storage,
    outcome,
    settle_stale_trials,
    storage_spec,
    tell,
)
from seglab.sweeps.workers import SearchPlan, custom_search_space, trial_overrides

# The search on tiny data, one batch per stage; encoder and batch size fixed on the command line.
SEARCH = ["seglab-train", "-m", "hparams_search=synthetic_optuna", *TINY, "trainer=debug",
          "encoder=mobilenet_v2"]
STUDY = "synthetic_optuna"
OLD_STUDY = Path(__file__).parent / "data" / "optuna_2_10_study.db"


def load_study(sweep: Path, name: str = STUDY) -> optuna.Study:
    journal = JournalFileBackend(str(sweep / "optuna.journal"))
    return optuna.load_study(study_name=name, storage=JournalStorage(journal))


def job_metrics(sweep: Path) -> dict[int, dict]:
    return {int(path.parent.name): json.loads(path.read_text())
            for path in sweep.glob("[0-9]*/metrics.json")}


# --- the search space: Hydra's sweep syntax as the published sweeper reads it ----------------

@pytest.mark.parametrize("line, expected", [
    ("x=choice(8, 16, 32)", CategoricalDistribution([8, 16, 32])),
    ("x=choice(ce, dice)", CategoricalDistribution(["ce", "dice"])),
    ("x=range(1, 10, 2)", IntDistribution(1, 9, step=2)),      # Hydra's range excludes 10
    ("x=range(0, 10, 5)", IntDistribution(0, 5, step=5)),
    ("x=range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("x=interval(0.1, 0.9)", FloatDistribution(0.1, 0.9)),
    ("x=tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
    ("x=tag(int, interval(1, 64))", IntDistribution(1, 64)),
    ("x=tag(log, int, interval(1, 64))", IntDistribution(1, 64, log=True)),
])
def test_sweep_syntax_becomes_optuna_distributions(line, expected):
    space, fixed = parse_params([line])
    assert space == {"x": expected} and fixed == {}


def test_a_plain_value_on_the_command_line_fixes_a_searched_key():
    space, fixed = parse_params(["loss=choice(ce, dice)", "lr=interval(0.1, 1)", "loss=dice"])
    assert space == {"lr": FloatDistribution(0.1, 1.0)} and fixed == {"loss": "dice"}
    assert set(parse_params(["x=shuffle(range(1, 4))"])[0]["x"].choices) == {1, 2, 3}


def test_an_impossible_range_is_one_line_naming_it():
    with pytest.raises(SearchSpaceError, match=r"^'x=interval\(2, 1\)': "):
        parse_params(["x=interval(2, 1)"])


# --- samplers and pruners ---------------------------------------------------------------------

def test_each_worker_gets_its_own_seed():
    space = {"x": FloatDistribution(0.0, 1.0)}
    config = {"_target_": "optuna.samplers.RandomSampler", "seed": 7}

    def first_draw(worker: int) -> float:
        study = optuna.create_study(sampler=build_sampler(config, space, worker))
        return study.ask(space).params["x"]

    assert first_draw(0) == first_draw(0)  # the configured seed, as with one worker
    assert len({first_draw(0), first_draw(1), first_draw(2)}) == 3


@pytest.mark.parametrize("config, kind, attributes", [
    (None, optuna.pruners.NopPruner, {}),
    ("none", optuna.pruners.NopPruner, {}),
    ("median", optuna.pruners.MedianPruner, {"_n_warmup_steps": 0}),
    ("percentile", optuna.pruners.PercentilePruner, {"_percentile": 25.0}),
    ("hyperband", optuna.pruners.HyperbandPruner, {"_min_resource": 1}),
    ("successive_halving", optuna.pruners.SuccessiveHalvingPruner, {}),
    ({"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 3},
     optuna.pruners.MedianPruner, {"_n_warmup_steps": 3}),
    ({"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 2, "max_resource": 9,
      "reduction_factor": 3}, optuna.pruners.HyperbandPruner, {"_min_resource": 2}),
])
def test_pruners_by_name_or_target(config, kind, attributes):
    pruner = build_pruner(config)
    assert type(pruner) is kind
    assert {key: getattr(pruner, key) for key in attributes} == attributes


@pytest.mark.parametrize("config, message", [
    ("mean", "hydra.sweeper.pruner=mean: expected one of none, median, percentile, hyperband, "
             "successive_halving (or a mapping with _target_)"),
    ({"_target_": "optuna.pruners.MedianPruner", "warmup": 3},
     "hydra.sweeper.pruner (optuna.pruners.MedianPruner): TypeError: "),
])
def test_a_bad_pruner_is_one_line(config, message):
    with pytest.raises(StudyError) as error:
        build_pruner(config)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_median_pruner_stops_a_trial_below_the_median_at_the_same_step():
    study = optuna.create_study(direction="maximize", pruner=build_pruner(
        {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}))
    for values in ([0.2, 0.4], [0.3, 0.5]):
        trial = study.ask()
        for step, value in enumerate(values):
            trial.report(value, step)
        study.tell(trial, values[-1])
    good, bad = study.ask(), study.ask()
    good.report(0.35, 0)
    bad.report(0.1, 0)
    assert not good.should_prune() and bad.should_prune()


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_choice_builds_and_samples(name):
    space, _ = parse_params(["loss=choice(ce, dice)", "lr=tag(log, interval(1e-4, 1e-2))"]
                            if name != "grid" else ["loss=choice(ce, dice)"])
    study = optuna.create_study(sampler=build_sampler(SAMPLERS[name], space))
    trial = study.ask(space)
    assert set(trial.params) == set(space)
    assert type(study.sampler).__name__ == SAMPLERS[name]["_target_"].rpartition(".")[2]


def test_grid_sampler_walks_the_grid_of_choices_and_ranges():
    space, _ = parse_params(["loss=choice(ce, dice)", "seed=range(0, 3)"])
    config = {"_target_": "optuna.samplers.GridSampler", "seed": 0}
    assert grid_size(config, space) == 6 and grid_size({"_target_": "x.TPESampler"}, space) is None
    study = optuna.create_study(sampler=build_sampler(config, space))
    for _ in range(6):  # after the last point GridSampler stops the study: tell allows that
        tell(study, study.ask(space), TrialState.COMPLETE, 1.0)
    assert sorted((t.params["loss"], t.params["seed"]) for t in study.trials) == [
        (loss, seed) for loss in ("ce", "dice") for seed in (0, 1, 2)]
    with pytest.raises(StudyError, match=r"^hydra.sweeper.params.lr: GridSampler needs "):
        build_sampler(config, parse_params(["lr=interval(0.1, 1)"])[0])


def extend_space(cfg, trial) -> None:
    """A custom_search_space function: a parameter that exists only for one loss."""
    if trial.params["loss"] == "focal":
        trial.suggest_float("loss.gamma", 1.0, 3.0)


def test_custom_search_space_adds_conditional_parameters():
    space = {"loss": CategoricalDistribution(["ce", "focal"])}
    plan = SearchPlan(storage="", study_name="s", direction="maximize", sampler={}, pruner=None,
                      space=space, fixed={"encoder": "resnet18"},
                      custom_search_space="test_optuna.extend_space", n_trials=4,
                      max_failure_rate=0.0, metric="val/mIoU_best", sweep_dir="",
                      hydra_context=None, config=None, task_function=None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"loss": "ce"})
    study.enqueue_trial({"loss": "focal"})
    lines = sorted(tuple(trial_overrides(study.ask(space), plan)) for _ in range(2))
    assert lines[0] == ("loss=ce", "encoder=resnet18")
    assert lines[1][0] == "loss=focal" and lines[1][1].startswith("loss.gamma=")
    assert lines[1][2] == "encoder=resnet18"


@pytest.mark.parametrize("path, message", [
    ("no_such_module.extend", "ModuleNotFoundError: No module named 'no_such_module'"),
    ("test_optuna.no_such_function", "AttributeError: module 'test_optuna' has no attribute "
                                     "'no_such_function'"),
    ("test_optuna.STUDY", "expected the dotted path of a function(cfg, trial)"),
])
def test_a_bad_custom_search_space_is_one_line(path, message):
    with pytest.raises(StudyError) as error:
        custom_search_space(path)
    assert str(error.value).startswith(f"hydra.sweeper.custom_search_space={path}: ")
    assert message in str(error.value) and "\n" not in str(error.value)


# --- how trials end -------------------------------------------------------------------------

def write_job(sweep: Path, number: int, record: dict) -> None:
    (sweep / str(number)).mkdir(parents=True)
    (sweep / str(number) / "metrics.json").write_text(json.dumps(record))


def test_a_trial_outcome_comes_from_its_metrics_json(tmp_path):
    write_job(tmp_path, 0, {"status": "completed", "val/mIoU_best": 0.4})
    write_job(tmp_path, 1, {"status": "pruned", "val/mIoU_best": 0.1})
    write_job(tmp_path, 2, {"status": "failed", "error": "x"})
    metric = "val/mIoU_best"
    assert outcome(tmp_path / "0", metric, 0.4) == (TrialState.COMPLETE, 0.4)
    assert outcome(tmp_path / "0", metric, None) == (TrialState.COMPLETE, 0.4)  # saved score
    assert outcome(tmp_path / "1", metric, 0.1) == (TrialState.PRUNED, None)
    assert outcome(tmp_path / "2", metric, float("nan")) == (TrialState.FAIL, None)
    assert outcome(tmp_path / "3", metric, None) == (TrialState.FAIL, None)  # never started


def test_trials_left_running_are_settled_unless_their_process_runs(tmp_path):
    study = optuna.create_study(study_name=STUDY, storage=open_storage(str(tmp_path / "j")),
                                direction="maximize")
    study.tell(study.ask(), 0.1)
    trials = [study.ask() for _ in range(6)]
    dead = {"pid": 2 ** 22 + 1, "host": process_identity()["host"], "process_start": 1}
    write_job(tmp_path, 1, {"status": "running", "model": "unet", **dead})
    write_job(tmp_path, 2, {"status": "completed", "val/mIoU_best": 0.4})
    write_job(tmp_path, 3, {"status": "pruned", "val/mIoU_best": 0.05})
    write_job(tmp_path, 4, {"status": "running", **process_identity()})  # alive: this process
    write_job(tmp_path, 5, {"status": "running", "model": "unet"})  # names no process
    assert not (tmp_path / str(trials[-1].number)).exists()  # 6: asked, never started

    settle_stale_trials(study, tmp_path, "val/mIoU_best")

    assert [(t.state, t.value) for t in study.trials] == [
        (TrialState.COMPLETE, 0.1), (TrialState.FAIL, None), (TrialState.COMPLETE, 0.4),
        (TrialState.PRUNED, None), (TrialState.RUNNING, None), (TrialState.FAIL, None),
        (TrialState.FAIL, None)]
    killed = json.loads((tmp_path / "1" / "metrics.json").read_text())
    assert killed["status"] == "failed" and killed["model"] == "unet"
    assert killed["error"].startswith(f"its process (pid {dead['pid']}) is gone without "
                                      "finishing: killed by a signal")
    assert json.loads((tmp_path / "5" / "metrics.json").read_text())["error"] == INTERRUPTED


# --- storage: the journal in the sweep folder, an earlier search's SQLite file ----------------

def test_storage_is_the_sweep_folders_journal_or_the_given_url(tmp_path):
    assert storage_spec(None, tmp_path) == str(tmp_path / "optuna.journal")
    assert storage_spec("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    (tmp_path / "optuna.db").write_bytes(b"")
    assert storage_spec(None, tmp_path) == f"sqlite:///{tmp_path / 'optuna.db'}"
    (tmp_path / "optuna.journal").write_bytes(b"")
    assert storage_spec(None, tmp_path) == str(tmp_path / "optuna.journal")


def test_a_study_of_the_earlier_search_resumes_after_a_kept_copy(tmp_path):
    database = tmp_path / "optuna.db"
    shutil.copy(OLD_STUDY, database)
    original = database.read_bytes()
    storage = open_storage(storage_spec(None, tmp_path))
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert [(t.number, t.state, t.value) for t in study.trials] == [
        (0, TrialState.COMPLETE, 0.31), (1, TrialState.FAIL, None),
        (2, TrialState.COMPLETE, 0.42)]
    assert set(study.trials[0].params) == {"optimizer.lr", "loss"}
    [backup] = tmp_path.glob("optuna.db.schema-*.bak")
    assert backup.read_bytes() == original
    study.tell(study.ask(), 0.5)  # the search goes on in the upgraded file
    assert len(optuna.load_study(study_name=STUDY, storage=open_storage(
        f"sqlite:///{database}")).trials) == 4


def test_a_storage_that_cannot_open_is_one_line(tmp_path):
    with pytest.raises(StudyError, match=r"^hydra.sweeper.storage=nosuchdb://x: "):
        open_storage("nosuchdb://x")


# --- whole searches ---------------------------------------------------------------------------

@pytest.mark.slow
def test_rerun_with_more_trials_runs_only_the_missing_ones_in_new_folders(tmp_path):
    sweep = tmp_path / "search"
    first = run_cli([*SEARCH, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"],
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    files = [sweep / str(number) / "metrics.json" for number in range(2)]
    before = [(path.stat().st_mtime_ns, path.read_text()) for path in files]

    second = run_cli([*SEARCH, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    study = load_study(sweep)
    assert [(trial.number, trial.state) for trial in study.trials] == [
        (number, TrialState.COMPLETE) for number in range(4)]
    assert [(path.stat().st_mtime_ns, path.read_text()) for path in files] == before
    metrics = job_metrics(sweep)
    assert sorted(metrics) == [0, 1, 2, 3]
    for trial in study.trials:  # job folder N ran trial N's parameters
        folder = sweep / str(trial.number)
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        assert f"loss={trial.params['loss']}" in overrides
        assert metrics[trial.number]["val/mIoU_best"] == pytest.approx(trial.value)
        # every validation reported the optimized metric to the trial
        assert list(trial.intermediate_values.values()) == [pytest.approx(trial.value)]

    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["value"] == pytest.approx(max(m["val/mIoU_best"] for m in metrics.values()))
    assert metrics[best["trial"]]["val/mIoU_best"] == pytest.approx(best["value"])
    assert best["job_dir"] == str(sweep / str(best["trial"]))
    assert best["metric"] == "val/mIoU_best" and best["direction"] == "maximize"
    assert set(best["params"]) == {"optimizer.lr", "optimizer.weight_decay", "loss"}
    assert best["trials"] == {"complete": 4, "pruned": 0, "failed": 0}
    assert f"best of 4 trials, saved to {sweep / 'best.yaml'}" in second.stdout
    assert "resuming study 'synthetic_optuna'" in second.stdout + second.stderr


@pytest.mark.slow
def test_failed_trial_is_failed_in_the_study_and_never_best(tmp_path):
    sweep = tmp_path / "search"
    search = [arg for arg in SEARCH if not arg.startswith("data.batch_size=")]
    # batch size 0 is refused by the config check: those trials fail, the others train
    result = run_cli([*search, "data.batch_size=choice(0,8)", "loss=ce",
                      "hydra.sweeper.sampler.seed=0", "hydra.sweeper.n_trials=3",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    # SweepSummary: a sweep with failed jobs exits 1, after the search's report
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr

    trials = load_study(sweep).trials
    assert len(trials) == 3
    assert {(trial.params["data.batch_size"], trial.state) for trial in trials} == {
        (0, TrialState.FAIL), (8, TrialState.COMPLETE)}
    metrics = job_metrics(sweep)
    assert {number: job["status"] for number, job in metrics.items()} == {
        trial.number: "failed" if trial.state == TrialState.FAIL else "completed"
        for trial in trials}
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    completed = [job["val/mIoU_best"] for job in metrics.values() if job["status"] == "completed"]
    assert best["value"] == pytest.approx(max(completed))
    assert best["params"]["data.batch_size"] == 8
    failed = sum(trial.state == TrialState.FAIL for trial in trials)
    assert best["trials"] == {"complete": 3 - failed, "pruned": 0, "failed": failed}


# A search config written for the published hydra-optuna-sweeper, in the shape of
# lightning-hydra-template's configs/hparams_search/mnist_optuna.yaml: its _target_, its
# sampler with _target_, storage and study_name null, hydra.mode MULTIRUN (no -m needed).
PUBLISHED_STYLE = """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna

optimized_metric: "val/mIoU_best"

hydra:
  mode: "MULTIRUN"
  sweeper:
    _target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper
    storage: null
    study_name: null
    n_jobs: 1
    direction: maximize
    n_trials: 2
    sampler:
      _target_: optuna.samplers.TPESampler
      seed: 1234
      n_startup_trials: 10
    params:
      optimizer.lr: interval(0.0001, 0.1)
      data.batch_size: choice(4, 8)
"""


@pytest.mark.slow
def test_a_search_config_of_the_published_sweeper_runs_unchanged(tmp_path):
    (tmp_path / "conf" / "hparams_search").mkdir(parents=True)
    (tmp_path / "conf" / "hparams_search" / "published.yaml").write_text(PUBLISHED_STYLE)
    sweep = tmp_path / "search"
    tiny = [arg for arg in TINY if not arg.startswith("data.batch_size=")]
    result = run_cli(["seglab-train", "hparams_search=published", *tiny, "trainer=debug",
                      "encoder=mobilenet_v2", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(sweep, "search")  # study_name null: the sweep folder's study "search"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert {t.params["data.batch_size"] for t in study.trials} <= {4, 8}
    assert all(0.0001 <= t.params["optimizer.lr"] <= 0.1 for t in study.trials)
    assert sorted(job_metrics(sweep)) == [0, 1]


@pytest.mark.slow
def test_pruned_trials_end_at_once_are_never_best_and_are_no_failure(tmp_path):
    sweep = tmp_path / "search"
    # a median pruner after one trial, warm-up of one epoch: later trials below the median
    # at epoch 1 or 2 stop there, untested
    result = run_cli([*SEARCH, "trainer=cpu", "trainer.max_epochs=3", "loss=ce",
                      "hydra.sweeper.n_trials=5", "hydra/sweeper/pruner=median",
                      "hydra.sweeper.pruner.n_startup_trials=1",
                      "hydra.sweeper.pruner.n_warmup_steps=1", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load_study(sweep)
    metrics = job_metrics(sweep)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 5
    for trial in pruned:
        job = metrics[trial.number]
        assert job["status"] == "pruned" and "test/mIoU" not in job
        step = job["pruned"]["step"]  # the epoch it stopped at, after the warm-up
        assert step in (1, 2) and job["epochs"] == step + 1
        assert sorted(trial.intermediate_values) == list(range(step + 1))
        assert job["pruned"]["value"] == pytest.approx(trial.intermediate_values[step])
        assert Path(job["checkpoint"]).is_file()  # its best checkpoint is kept
    for trial in complete:
        assert metrics[trial.number]["status"] == "completed"
        assert sorted(trial.intermediate_values) == [0, 1, 2]
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["trial"] in [t.number for t in complete]
    assert best["trials"] == {"complete": len(complete), "pruned": len(pruned), "failed": 0}
    assert f"5 jobs, {len(complete)} completed, {len(pruned)} pruned, 0 failed" in result.stdout

    table = run_cli(["seglab-compare", str(sweep)], cwd=tmp_path)
    assert f"5 runs: {len(complete)} completed, {len(pruned)} pruned" in table.stdout


@pytest.mark.slow
def test_ddp_processes_stop_together_when_the_trial_is_pruned(tmp_path):
    sweep = tmp_path / "search"
    # any Optuna pruner by its _target_: here one that stops every trial from its second step
    pruner = ["hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
              "+hydra.sweeper.pruner.lower=2.0", "+hydra.sweeper.pruner.n_warmup_steps=1"]
    result = run_cli([*SEARCH, "trainer=ddp_cpu", "trainer.max_epochs=3", "loss=ce",
                      "hydra.sweeper.n_trials=1", *pruner, f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    # the one trial is pruned (mIoU is below 2.0 from its second validation): none completed
    assert result.returncode == 1, result.stderr[-3000:]
    assert "error: no trial of 1 completed" in result.stderr
    [trial] = load_study(sweep).trials
    assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [0, 1]
    job = job_metrics(sweep)[0]
    assert job["status"] == "pruned" and job["epochs"] == 2 and job["pruned"]["step"] == 1


def search_trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    return sorted(load_study(sweep).trials, key=lambda trial: trial.number)


def most_at_once(trials: list[optuna.trial.FrozenTrial]) -> int:
    events = sorted([(t.datetime_start, 1) for t in trials] +
                    [(t.datetime_complete, -1) for t in trials])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.slow
def test_two_workers_run_six_trials_without_batches(tmp_path):
    sweep = tmp_path / "search"
    result = run_cli([*SEARCH, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = search_trials(sweep)
    assert [t.number for t in trials] == list(range(6))
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.FAIL}
    assert most_at_once(trials) == 2  # never more than two, and two at once
    assert sorted(job_metrics(sweep)) == list(range(6))
    assert {trial.user_attrs["worker"] for trial in trials} == {0, 1}
    assert "2 search workers" in result.stdout + result.stderr


@pytest.mark.slow
def test_workers_run_as_the_launchers_jobs(tmp_path):
    """Each worker is one submitit job. Ray tasks take the same path (the launcher runs the
    worker's task function); a local Ray is left to a manual check to keep the suite short."""
    sweep = tmp_path / "search"
    result = run_cli([*SEARCH, "hydra/launcher=submitit_local", "hydra.sweeper.n_trials=4",
                      "hydra.sweeper.n_jobs=2",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = search_trials(sweep)
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(4)]
    assert {trial.user_attrs["worker"] for trial in trials} == {0, 1}
    assert most_at_once(trials) == 2
    assert sorted(job_metrics(sweep)) == [0, 1, 2, 3]
    assert sorted(path.name for path in (sweep / ".workers").iterdir()) == ["0", "1"]


@pytest.mark.slow
def test_a_killed_worker_leaves_its_trial_failed_and_the_other_goes_on(tmp_path):
    sweep = tmp_path / "search"
    command = [str(BIN / "seglab-train"), *SEARCH[1:], "trainer=cpu", "trainer.max_epochs=4",
               "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    search = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and search.poll() is None:
        time.sleep(0.5)
        for number, job in job_metrics(sweep).items() if sweep.is_dir() else ():
            if job.get("status") == "running" and (job.get("heartbeat") or {}).get("step"):
                victim = number, job["pid"]
                break
    assert victim is not None, "no trial was seen running"
    os.kill(victim[1], signal.SIGKILL)
    out, err = search.communicate(timeout=600)
    # the killed trial failed, so the sweep exits 1; the other worker finished the study
    assert search.returncode == 1, err[-3000:]
    trials = search_trials(sweep)
    assert len(trials) == 4 and TrialState.RUNNING not in {t.state for t in trials}
    assert trials[victim[0]].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 2
    killed = job_metrics(sweep)[victim[0]]
    assert killed["status"] == "failed" and "is gone without finishing" in killed["error"]
    assert "ended with signal 9" in out + err

    rerun = run_cli([*SEARCH, "trainer=cpu", "trainer.max_epochs=4",
                     "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=2",
                     f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert rerun.returncode == 1  # the killed trial stays failed; the study gets its fifth
    assert [t.number for t in search_trials(sweep)] == list(range(5))
    assert search_trials(sweep)[4].state == TrialState.COMPLETE


def test_more_than_one_direction_is_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [str(BIN / "seglab-train"), *SEARCH[1:], "hydra.sweeper.direction=[maximize,minimize]",
         f"hydra.sweep.dir={tmp_path / 'search'}"], cwd=tmp_path, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: seglab searches one metric (optimized_metric): set hydra.sweeper.direction to "
        "maximize or minimize, not ['maximize', 'minimize']")


def test_pruning_a_test_metric_is_refused_in_one_line(tmp_path):
    result = subprocess.run(
        [str(BIN / "seglab-train"), *SEARCH[1:], "optimized_metric=test/mIoU",
         "hydra/sweeper/pruner=median", f"hydra.sweep.dir={tmp_path / 'search'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.pruner: pruning follows the optimized metric at every validation, "
        "so optimized_metric must be a validation score (val/...), not test/mIoU")
    assert not list((tmp_path / "search").glob("[0-9]*"))
