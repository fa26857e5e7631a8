"""Sweeps that survive: a failing job, a killed sweep finished by skip_completed, and loggers
that are each job's own (TensorBoard HParams, wandb runs grouped by sweep)."""

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from conftest import BIN, TINY, compose_config, run_cli, wandb_records
from seglab.runs.results import read_metrics
from seglab.runs.task import run_task
from seglab.sweeps.summary import job_statuses, sweep_summary

FAST = [*TINY[:-1], "encoder=mobilenet_v2"]  # TINY without logger=none
DEBUG = [*FAST, "trainer=debug", "logger=none"]


def _metrics(sweep: Path, job: int) -> dict:
    return json.loads((sweep / str(job) / "metrics.json").read_text())


def _multirun_cfg(tmp_path: Path, overrides: list[str]):
    """A composed config that says it runs inside a multirun."""
    cfg = compose_config("train", tmp_path / "job", [*DEBUG, *overrides])
    with read_write(cfg.hydra), open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_a_bug_inside_a_sweep_marks_the_job_failed_and_returns_nan(tmp_path, capsys):
    def buggy(cfg):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    assert math.isnan(run_task(buggy, _multirun_cfg(tmp_path, [])))
    saved = read_metrics(tmp_path / "job" / "metrics.json")
    assert saved["status"] == "failed"
    assert saved["error"].startswith("CUDA out of memory. Tried to allocate 2 GiB (traceback: ")
    assert "RuntimeError" in (tmp_path / "job" / "traceback.txt").read_text()
    assert capsys.readouterr().err.startswith("error: CUDA out of memory.")


def test_fail_fast_stops_the_sweep(tmp_path):
    def buggy(cfg):
        raise RuntimeError("boom")

    with pytest.raises(SystemExit):
        run_task(buggy, _multirun_cfg(tmp_path, ["sweep.fail_fast=true"]))
    assert read_metrics(tmp_path / "job" / "metrics.json")["status"] == "failed"


def test_a_job_says_running_while_it_runs(tmp_path):
    seen = {}

    def peek(cfg):
        from seglab.runs.folder import start_run
        output_dir = start_run(cfg).folder
        seen.update(read_metrics(output_dir / "metrics.json"))
        return {"status": "completed"}, {}

    run_task(peek, _multirun_cfg(tmp_path, ["model=fcn"]))
    assert seen["status"] == "running"
    assert (seen["model"], seen["encoder"], seen["data"]) == ("fcn", "mobilenet_v2", "synthetic")
    assert "model=fcn" in seen["overrides"] and seen["started"]


def test_summary_counts_and_lists_jobs(tmp_path):
    for job, content in {"0": {"status": "completed"}, "1": {"status": "failed", "error": "x"},
                         "2": {"status": "running"}, "10": {"status": "completed"}}.items():
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.json").write_text(json.dumps(content))
    (tmp_path / "3").mkdir()  # started, nothing written yet
    jobs = job_statuses(tmp_path)
    assert list(jobs) == ["0", "1", "2", "3", "10"]
    assert sweep_summary(jobs) == [
        "sweep: 5 jobs, 2 completed, 1 failed, 2 unfinished",
        "failed: job 1: x", "unfinished: job 2", "unfinished: job 3"]


@pytest.mark.slow
def test_a_sweep_with_a_failing_job_finishes_and_compares(tmp_path):
    sweep = tmp_path / "sweep"
    # fcn8s asks for a pair the registry refuses: a bad pair inside a grid
    result = run_cli(["seglab-train", "-m", *DEBUG, "model=unet,fcn8s,pspnet", "seed=0,1",
                      f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    models = ["unet", "unet", "fcn8s", "fcn8s", "pspnet", "pspnet"]
    statuses = [_metrics(sweep, job)["status"] for job in range(6)]
    assert statuses == ["failed" if model == "fcn8s" else "completed" for model in models]
    assert "does not support encoder 'mobilenet_v2'" in _metrics(sweep, 2)["error"]
    assert "sweep: 6 jobs, 4 completed, 2 failed, 0 unfinished" in result.stdout
    assert "failed: job 2: model 'fcn8s' does not support encoder" in result.stderr
    assert "Traceback" not in result.stderr

    table = run_cli(["seglab-compare", str(sweep)], cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = pd.read_csv(sweep / "comparison.csv", dtype={"run": str})
    assert sorted(rows["run"]) == ["0", "1", "2", "3", "4", "5"]
    assert "seed" in rows.columns and "optimizer" not in rows.columns  # only what differs
    completed = rows[rows["status"] == "completed"]
    best = completed["val_mIoU_best"].max()
    assert rows["val_mIoU_best"].iloc[0] == best  # best first, failed rows last
    assert rows["status"].tolist()[-2:] == ["failed", "failed"]
    assert rows["error"].iloc[-1].startswith("model 'fcn8s' does not support encoder")
    for run in completed.itertuples():  # the CSV holds each run's metrics.json values
        saved = _metrics(sweep, int(run.run))
        assert (run.model, run.seed) == (saved["model"], saved["seed"])
        assert run.test_mIoU == pytest.approx(saved["test/mIoU"])
    markdown = (sweep / "comparison.md").read_text()
    assert f"**{best:.4f}**" in markdown
    assert (sweep / "comparison.png").stat().st_size > 10_000

    grouped = run_cli(["seglab-compare", str(sweep), "--group-by", "seed",
                       "--out", str(tmp_path / "grouped")], cwd=tmp_path)
    assert grouped.returncode == 0, grouped.stderr
    groups = pd.read_csv(tmp_path / "grouped" / "comparison.csv").set_index("model")
    for model in ("unet", "pspnet"):
        scores = completed[completed["model"] == model]["test_mIoU"]
        assert groups.loc[model, "n"] == 2
        assert groups.loc[model, "test_mIoU_mean"] == pytest.approx(scores.mean())
        assert groups.loc[model, "test_mIoU_std"] == pytest.approx(scores.std(ddof=1))
    assert (groups.loc["fcn8s", "n"], groups.loc["fcn8s", "n_failed"]) == (0, 2)


def _start_sweep(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([str(BIN / "seglab-train"), *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.slow
def test_a_killed_sweep_is_finished_by_skip_completed(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *DEBUG, "optimizer=adamw,sgd,adam", f"hydra.sweep.dir={sweep}"]
    process = _start_sweep(args, tmp_path)
    deadline = time.monotonic() + 300
    while read_metrics(sweep / "0" / "metrics.json") is None or \
            _metrics(sweep, 0)["status"] != "completed":
        assert process.poll() is None and time.monotonic() < deadline, "sweep ended early"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = (sweep / "0" / "metrics.json").read_bytes()
    assert read_metrics(sweep / "2" / "metrics.json") is None  # never reached

    resumed = run_cli(["seglab-train", *args, "sweep.skip_completed=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"skipped: {sweep}/0 already completed" in resumed.stdout
    assert (sweep / "0" / "metrics.json").read_bytes() == first
    assert [_metrics(sweep, job)["status"] for job in range(3)] == ["completed"] * 3
    assert "sweep: 3 jobs, 3 completed, 0 failed, 0 unfinished" in resumed.stdout


def _hparams_of(event_dir: Path) -> tuple[dict, list[str]]:
    """The hparams and metric tags TensorBoard's HParams plugin reads from event files."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(event_dir))
    multiplexer.Reload()
    hparams, metric_tags = {}, []
    for content in multiplexer.PluginRunToTagToContent("hparams").values():
        for raw in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if data.HasField("session_start_info"):
                hparams = {key: value.string_value or value.number_value
                           for key, value in data.session_start_info.hparams.items()}
            if data.HasField("experiment"):
                metric_tags = [info.name.tag for info in data.experiment.metric_infos]
    return hparams, metric_tags


@pytest.mark.slow
def test_each_job_has_its_own_tensorboard_wandb_and_csv_logs(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(["seglab-train", "-m", *FAST, "model=unet,fcn",
                      "logger=[csv,tensorboard,wandb]", f"hydra.sweep.dir={sweep}"],
                     cwd=tmp_path, WANDB_MODE="offline")
    assert result.returncode == 0, result.stderr[-2000:]
    for job, model in enumerate(("unet", "fcn")):
        saved = _metrics(sweep, job)
        hparams, metric_tags = _hparams_of(sweep / str(job) / "tensorboard")
        assert (hparams["model"], hparams["encoder"], hparams["loss"]) == (model, "mobilenet_v2",
                                                                           "ce_dice")
        assert hparams["optimizer.lr"] == pytest.approx(0.003)
        assert "final/val_mIoU_best" in metric_tags and "final/test_mIoU" in metric_tags
        assert (sweep / str(job) / "csv" / "metrics.csv").is_file()

        runs = list((sweep / str(job) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, runs
        records = wandb_records(runs[0])
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert run.run_group == str(sweep)
        assert f"model={model}" in run.tags and "logger=[csv,tensorboard,wandb]" in run.tags
        exits = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
        assert [e.exit_code for e in exits] == [0]  # finished at the job's end
        assert saved["status"] == "completed"
