"""Resume after a crash: a run killed anywhere (mid-epoch in any epoch, at an epoch's last
step, during validation, between epochs, during the test) continues from its last.ckpt and ends
exactly where the uninterrupted run ends; folders that cannot be resumed are refused, untouched."""

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, compose_config, measured, run_cli
from seglab.core.errors import ConfigError
from seglab.engine.training import train
from seglab.runs.resume import resumed_config

TESTS = Path(__file__).parent
# 48 / 8 = 6 steps an epoch, 3 epochs, 2 validation and 2 test batches; last.ckpt every 3 steps
# (but not at an epoch's last step: steps 3, 9, 15) and at each epoch's end; the default loss,
# scheduler and precision
RUN = [*TINY, "data.lengths={train:48,val:16,test:16}", "trainer.max_epochs=3",
       "callbacks.step_checkpoint.every_n_train_steps=3"]
# where a kill lands, and the step of the last.ckpt the run resumes from
KILL_POINTS = {
    "mid-epoch 0": ({"where": "train_batch", "step": 4}, 3),
    "mid-epoch 1": ({"where": "train_batch", "step": 11}, 9),
    "at epoch 1's last step": ({"where": "train_batch", "step": 12}, 9),
    "during epoch 1's validation": ({"where": "validation_batch", "epoch": 1, "batch": 1}, 9),
    "as epoch 2 starts": ({"where": "train_epoch_start", "epoch": 2}, 12),
    "during the test": ({"where": "test_batch", "batch": 1}, 18),
}
# counted in steps: 32 / 8 = 4 steps an epoch, 10 steps, validation at steps 3, 6 and 9 (across
# epochs); last.ckpt at every step but an epoch's last and those a validation follows (1, 2, 5,
# 7, 10), and at each validation's end (3, 6, 9)
STEPS_RUN = [*TINY, "trainer.max_epochs=-1", "trainer.max_steps=10",
             "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=3",
             "callbacks.step_checkpoint.every_n_train_steps=1"]
STEPS_KILL_POINTS = {
    "before the first validation": ({"where": "train_batch", "step": 2}, 1),
    "as epoch 1 starts, after a validation": ({"where": "train_epoch_start", "epoch": 1}, 3),
    "at a step a validation follows": ({"where": "train_batch", "step": 6}, 5),
    "during the validation at step 9": ({"where": "validation_batch", "epoch": 2, "batch": 1},
                                        7),
    "during the test": ({"where": "test_batch", "batch": 1}, 10),
}
# what may differ between a resumed run and the uninterrupted one: where it lives, and the
# machine's time, speed and memory (`measured`)
NOT_COMPARED = {"run_dir", "checkpoint"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_thread():
    """The same arithmetic in every command-line run: one thread each."""
    return {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}


def _saved_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


def _results(run: Path) -> tuple[dict, str]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {key: value for key, value in metrics.items()
            if key not in NOT_COMPARED and not measured(key)}, \
        (run / "metrics.csv").read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread) -> tuple[dict, str]:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = run_cli(["seglab-train", *RUN, f"hydra.run.dir={run}"], cwd=run.parent, **one_thread)
    assert done.returncode == 0, done.stderr[-3000:]
    return _results(run)


def _kill_and_resume(run: Path, arguments: list[str], kill: dict, resumed_from: int,
                     environment: dict) -> tuple[dict, str]:
    """Run until `kill` strikes, check last.ckpt was written at step `resumed_from`, resume,
    and return the resumed run's results."""
    killed = run_cli(["seglab-train", *arguments, "+callbacks.kill._target_=faults.KillAt",
                      *(f"+callbacks.kill.{key}={value}" for key, value in kill.items()),
                      f"hydra.run.dir={run}"], cwd=run.parent, **environment)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((run / "metrics.json").read_text())["status"] == "running"
    assert _saved_step(run / "checkpoints" / "last.ckpt") == resumed_from

    resumed = run_cli(["seglab-train", f"resume={run}"], cwd=run.parent, **environment)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in (run / "train.log").read_text()
    return _results(run)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, one_thread, uninterrupted,
                                                          point):
    metrics, history = _kill_and_resume(tmp_path / "killed", RUN, *KILL_POINTS[point],
                                        one_thread)
    expected_metrics, expected_history = uninterrupted
    assert metrics["status"] == "completed" and metrics["epochs"] == 3
    assert metrics == expected_metrics
    assert history == expected_history  # every epoch's row, each value to the last digit


@pytest.fixture(scope="module")
def uninterrupted_steps(tmp_path_factory, one_thread) -> tuple[dict, str]:
    run = tmp_path_factory.mktemp("uninterrupted_steps") / "run"
    done = run_cli(["seglab-train", *STEPS_RUN, f"hydra.run.dir={run}"], cwd=run.parent,
                   **one_thread)
    assert done.returncode == 0, done.stderr[-3000:]
    return _results(run)


@pytest.mark.parametrize("point", STEPS_KILL_POINTS)
def test_a_killed_run_counted_in_steps_resumes_to_the_uninterrupted_result(
        tmp_path, one_thread, uninterrupted_steps, point):
    metrics, history = _kill_and_resume(tmp_path / "killed", STEPS_RUN,
                                        *STEPS_KILL_POINTS[point], one_thread)
    expected_metrics, expected_history = uninterrupted_steps
    assert (metrics["status"], metrics["steps"], metrics["epochs"]) == ("completed", 10, 3)
    assert [row.split(",")[0] for row in history.splitlines()] == ["step", "3", "6", "9"]
    assert metrics == expected_metrics
    assert history == expected_history  # every validation's row, each value to the last digit


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    metrics, _ = train(compose_config("train", tmp_path_factory.mktemp("finished") / "run",
                                      TINY))
    return Path(metrics["run_dir"])


def _snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("damage, message", [
    ("completed", "already completed; nothing to continue"),
    ("no last.ckpt", "last.ckpt is missing: the run stopped before its first checkpoint"),
    ("no config", "is not a seglab-train run folder"),
    ("truncated last.ckpt", "resume: .*last.ckpt is truncated or corrupt"),
])
def test_a_run_that_cannot_continue_is_refused_untouched(tmp_path, finished_run,
                                                         tiny_train_cfg, damage, message):
    run = shutil.copytree(finished_run, tmp_path / "run")
    if damage != "completed":
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "status": "failed"}))
    if damage == "no last.ckpt":
        (run / "checkpoints" / "last.ckpt").unlink()
    if damage == "truncated last.ckpt":
        checkpoint = run / "checkpoints" / "last.ckpt"
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    if damage == "no config":
        (run / ".hydra" / "config.yaml").unlink()
    before = _snapshot(run)
    with pytest.raises(ConfigError, match=message):
        train(tiny_train_cfg("again", [f"resume={run}"]))
    assert _snapshot(run) == before


def test_resume_needs_a_folder(tmp_path, tiny_train_cfg):
    with pytest.raises(ConfigError, match="resume: .* not a folder"):
        train(tiny_train_cfg("again", [f"resume={tmp_path / 'nowhere'}"]))


def test_a_resumed_run_continues_its_wandb_run(tmp_path, finished_run):
    run = shutil.copytree(finished_run, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "status": "failed"}))
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    saved.logger = {"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger"}}
    saved.paths.output_dir = str(run)  # as if the run had been written here
    OmegaConf.save(saved, run / ".hydra" / "config.yaml")
    (run / "wandb" / "offline-run-20261121_101010-k3x9q2ab").mkdir(parents=True)
    (run / "wandb" / "latest-run").symlink_to("offline-run-20261121_101010-k3x9q2ab")
    cfg = compose_config("train", tmp_path / "ignored", [f"resume={run}"])
    resumed, _ = resumed_config(cfg, run)
    assert (resumed.logger.wandb.id, resumed.logger.wandb.resume) == ("k3x9q2ab", "allow")
    assert resumed.paths.output_dir == str(run)


def test_a_killed_ddp_run_resumes_to_the_uninterrupted_result(tmp_path, one_thread):
    # both processes of a 2-process CPU DDP run die as epoch 1 starts; the resumed run's
    # second process starts while rank zero already runs it (and is not refused for that)
    ddp = [*TINY, "trainer=ddp_cpu", "trainer.max_epochs=2", "data.lengths={train:32,val:16,"
           "test:16}"]
    runs = {name: tmp_path / name for name in ("uninterrupted", "killed")}
    done = run_cli(["seglab-train", *ddp, f"hydra.run.dir={runs['uninterrupted']}"],
                   cwd=tmp_path, **one_thread)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = run_cli(["seglab-train", *ddp, "+callbacks.kill._target_=faults.KillAt",
                      "+callbacks.kill.where=train_epoch_start", "+callbacks.kill.epoch=1",
                      f"hydra.run.dir={runs['killed']}"], cwd=tmp_path, **one_thread)
    assert killed.returncode == -signal.SIGKILL
    resumed = run_cli(["seglab-train", f"resume={runs['killed']}"], cwd=tmp_path, **one_thread)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (metrics, history), (expected, expected_history) = (_results(runs["killed"]),
                                                        _results(runs["uninterrupted"]))
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert metrics == expected and history == expected_history
