"""Optuna search (`hparams_search=synthetic_optuna`): a resumable study in the sweep folder,
failed trials that never score, and best.yaml."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from conftest import TINY, run_cli
from seglab.sweeps.search import (
    INTERRUPTED,
    ResumableOptunaSweeper,
    job_score,
    settle_stale_trials,
    tell,
)

# The search on tiny data, one batch per stage; encoder and batch size fixed on the command line.
SEARCH = ["seglab-train", "-m", "hparams_search=synthetic_optuna", *TINY, "trainer=debug",
          "encoder=mobilenet_v2"]
STUDY = "synthetic_optuna"


def load_study(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep}/optuna.db")


def job_metrics(sweep: Path) -> dict[int, dict]:
    return {int(path.parent.name): json.loads(path.read_text())
            for path in sweep.glob("*/metrics.json")}


def finished(value=None, error: Exception | None = None) -> JobReturn:
    ret = JobReturn(status=JobStatus.FAILED if error else JobStatus.COMPLETED)
    ret._return_value = error or value
    return ret


@pytest.mark.slow
def test_rerun_with_more_trials_runs_only_the_missing_ones_in_new_folders(tmp_path):
    sweep = tmp_path / "search"
    first = run_cli([*SEARCH, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"],
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    files = [sweep / str(number) / "metrics.json" for number in range(3)]
    before = [(path.stat().st_mtime_ns, path.read_text()) for path in files]

    second = run_cli([*SEARCH, "hydra.sweeper.n_trials=5", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    study = load_study(sweep)
    assert [(trial.number, trial.state) for trial in study.trials] == [
        (number, TrialState.COMPLETE) for number in range(5)]
    assert [(path.stat().st_mtime_ns, path.read_text()) for path in files] == before
    metrics = job_metrics(sweep)
    assert sorted(metrics) == [0, 1, 2, 3, 4]
    for trial in study.trials:  # job folder N ran trial N's parameters
        folder = sweep / str(trial.number)
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        assert f"loss={trial.params['loss']}" in overrides
        assert metrics[trial.number]["val/mIoU_best"] == pytest.approx(trial.value)

    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["value"] == pytest.approx(max(m["val/mIoU_best"] for m in metrics.values()))
    assert metrics[best["trial"]]["val/mIoU_best"] == pytest.approx(best["value"])
    assert best["job_dir"] == str(sweep / str(best["trial"]))
    assert best["metric"] == "val/mIoU_best" and best["direction"] == "maximize"
    assert set(best["params"]) == {"optimizer.lr", "optimizer.weight_decay", "loss"}
    assert best["trials"] == {"complete": 5, "failed": 0}
    assert f"best of 5 trials, saved to {sweep / 'best.yaml'}" in second.stdout


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
    assert best["trials"] == {"complete": 3 - failed, "failed": failed}


def test_job_scores_only_finite_numbers():
    assert job_score(finished(0.25)) == (0.25, "")
    assert job_score(finished(math.nan)) == (None, "returned nan")
    assert job_score(finished(None)) == (None, "returned None")
    assert job_score(finished(error=RuntimeError("boom"))) == (None, "raised RuntimeError: boom")


def test_interrupted_trials_are_settled_from_their_job_folders(tmp_path):
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{tmp_path}/optuna.db",
                                direction="maximize")
    tell(study, study.ask(), 0.1)
    running, done_untold, never_started = study.ask(), study.ask(), study.ask()
    for trial, saved in ((running, {"status": "running", "model": "unet"}),
                         (done_untold, {"status": "completed", "val/mIoU_best": 0.4})):
        (tmp_path / str(trial.number)).mkdir()
        (tmp_path / str(trial.number) / "metrics.json").write_text(json.dumps(saved))

    settle_stale_trials(study, str(tmp_path), "val/mIoU_best")

    assert [(t.state, t.value) for t in study.trials] == [
        (TrialState.COMPLETE, 0.1), (TrialState.FAIL, None), (TrialState.COMPLETE, 0.4),
        (TrialState.FAIL, None)]
    assert json.loads((tmp_path / "1" / "metrics.json").read_text()) == {
        "status": "failed", "model": "unet", "error": INTERRUPTED}
    assert not (tmp_path / str(never_started.number)).exists()


def make_sweeper(tmp_path: Path, **config) -> ResumableOptunaSweeper:
    defaults = dict(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize",
                    storage=None, study_name=None, n_trials=2, n_jobs=2, max_failure_rate=0.0,
                    search_space=None, custom_search_space=None, params=None)
    sweeper = ResumableOptunaSweeper(**{**defaults, **config})
    sweeper.sweep_dir = str(tmp_path)
    return sweeper


@pytest.mark.parametrize("max_failure_rate, stops", [(0.0, True), (1.0, False)])
def test_failure_rate_of_a_batch_stops_the_search(tmp_path, capsys, max_failure_rate, stops):
    sweeper = make_sweeper(tmp_path, max_failure_rate=max_failure_rate)
    study = optuna.create_study(direction="maximize")
    batch = [study.ask(), study.ask()]
    returns = [finished(0.5), finished(math.nan)]
    if stops:
        with pytest.raises(SystemExit):
            sweeper._tell_batch(study, batch, returns)
        assert capsys.readouterr().err == (
            "error: trials [1] failed: more than hydra.sweeper.max_failure_rate=0.0 of a batch "
            "of 2; rerun the same command to go on\n")
    else:
        sweeper._tell_batch(study, batch, returns)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]


def test_grid_sampler_gets_the_grid_and_runs_each_point_once(tmp_path):
    sweeper = make_sweeper(tmp_path, sampler=functools.partial(optuna.samplers.GridSampler),
                           n_trials=10)
    space = {"loss": CategoricalDistribution(["ce", "dice"]),
             "seed": CategoricalDistribution([0, 1])}
    study = optuna.create_study(sampler=sweeper._build_sampler(space))
    assert sweeper.n_trials == 4
    for _ in range(4):  # after the last point GridSampler calls study.stop(), which tell allows
        trial = study.ask()
        sweeper._configure_trials([trial], space, {})
        tell(study, trial, 1.0)
    assert sorted((t.params["loss"], t.params["seed"]) for t in study.trials) == [
        ("ce", 0), ("ce", 1), ("dice", 0), ("dice", 1)]


def test_more_than_one_direction_is_refused_in_one_line(tmp_path, capsys):
    sweeper = make_sweeper(tmp_path, direction=["maximize", "minimize"])
    with pytest.raises(SystemExit):
        sweeper.sweep([])
    assert capsys.readouterr().err == (
        "error: seglab searches one metric (optimized_metric): set hydra.sweeper.direction to "
        "maximize or minimize, not ['maximize', 'minimize']\n")
