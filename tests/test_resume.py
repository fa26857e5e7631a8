"""Resume after a crash: a run killed mid-epoch continues from its last.ckpt and ends where the
uninterrupted run ends; folders that cannot be resumed are refused, untouched."""

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, compose_config, run_cli
from seglab.errors import ConfigError
from seglab.resume import resumed_config
from seglab.training import train

TESTS = Path(__file__).parent
# 48 / 8 = 6 steps an epoch, 2 epochs; last.ckpt every 4 steps; the kill lands at step 5.
RUN = [*TINY, "data.lengths={train:48,val:16,test:16}", "trainer.max_epochs=2",
       "callbacks.step_checkpoint.every_n_train_steps=4"]
KILL = ["+callbacks.kill._target_=faults.KillAtStep", "+callbacks.kill.step=5"]

pytestmark = pytest.mark.slow


@pytest.fixture
def one_thread():
    """The same arithmetic in this process as in the one-thread command-line runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    torch.set_num_threads(threads)


def _saved_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path, one_thread,
                                                                      tiny_train_cfg):
    run = tmp_path / "killed"
    killed = run_cli(["seglab-train", *RUN, *KILL, f"hydra.run.dir={run}"], cwd=tmp_path,
                     **one_thread)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((run / "metrics.json").read_text())["status"] == "running"
    assert _saved_step(run / "checkpoints" / "last.ckpt") == 4  # mid-epoch 0 of 6 steps

    resumed = run_cli(["seglab-train", f"resume={run}"], cwd=tmp_path, **one_thread)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = json.loads((run / "metrics.json").read_text())

    uninterrupted, _ = train(tiny_train_cfg("uninterrupted", RUN))
    assert after["status"] == "completed"
    assert after["epochs"] == uninterrupted["epochs"] == 2
    for key in ("val/mIoU", "val/loss", "test/mIoU", "test/loss", "test/pixel_acc"):
        assert after[key] == pytest.approx(uninterrupted[key], abs=1e-7), key
    history = (run / "metrics.csv").read_text().splitlines()
    assert len(history) == 3  # header + both epochs, the first one recorded before the kill
    assert "Restoring states from the checkpoint" in (run / "train.log").read_text()


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
    resumed = resumed_config(cfg, run)
    assert (resumed.logger.wandb.id, resumed.logger.wandb.resume) == ("k3x9q2ab", "allow")
    assert resumed.paths.output_dir == str(run)
