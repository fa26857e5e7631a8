"""Faults during a run: a diverging loss, an fp16 overflow in the loss, an output folder that
cannot be written, a full disk. Each ends in one line and leaves what was written intact."""

import json
import sys
from pathlib import Path

import pytest
import torch

from faults import PoisonWeightsAtStep
from seglab.cli import train as train_cli
from seglab.engine import training
from seglab.engine.builders import build_callbacks, build_module
from seglab.engine.training import train
from seglab.runs.task import run_task


def test_a_nan_loss_stops_the_run_and_keeps_the_best_checkpoint(tiny_train_cfg, capsys,
                                                                 monkeypatch):
    cfg = tiny_train_cfg("diverged", ["trainer.max_epochs=3"])  # 32 / 8 = 4 steps an epoch
    poison = PoisonWeightsAtStep(step=6)
    monkeypatch.setattr(training, "build_callbacks",
                        lambda cfg: [*build_callbacks(cfg), poison])
    with pytest.raises(SystemExit) as stopped:
        run_task(train, cfg)
    assert stopped.value.code == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: training diverged: the loss is nan at step 6 (epoch 1, "
                           "batch 2); last completed epoch: epoch 0; best val/mIoU"), line
    run = Path(cfg.paths.output_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "diverged" in metrics["error"]
    assert not (run / "traceback.txt").exists()
    assert (run / "checkpoints" / "best.ckpt").read_bytes() == poison.best_before


def test_losses_run_in_fp32_under_fp16_autocast(tiny_train_cfg):
    """Dice sums 2 x 256 x 256 probabilities per class: above fp16's largest value (65504)."""
    cfg = tiny_train_cfg("dice", ["loss=dice"])
    module = build_module(cfg, ["background", "disc", "box", "triangle"])
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 256, 256, generator=generator).half()
    target = torch.randint(0, 4, (2, 256, 256), generator=generator)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not torch.isfinite(module.loss(logits, target))  # what fp16 alone gives
        loss = module.fp32_loss(logits, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(module.loss(logits.float(), target).item(), rel=1e-6)


def _train_cli(monkeypatch, capsys, *arguments: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["seglab-train", *arguments])
    with pytest.raises(SystemExit) as stopped:
        train_cli.main()
    return stopped.value.code, capsys.readouterr().err


@pytest.mark.parametrize("key", ["hydra.run.dir", "paths.log_dir", "hydra.sweep.dir"])
def test_an_output_folder_under_a_file_is_one_line_before_anything_runs(
        tmp_path, monkeypatch, capsys, key):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code, err = _train_cli(monkeypatch, capsys, f"{key}={blocker}/run")
    assert code == 2
    assert err == f"error: {key}: cannot create {blocker}/run: {blocker} is a file, not a " \
                  "folder\n"
    assert blocker.read_text() == "keep me"


def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch, capsys):
    def refuse(**where):  # tests run as root, whom permission bits never stop
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("seglab.cli.arguments.tempfile.mkdtemp", refuse)
    code, err = _train_cli(monkeypatch, capsys, f"hydra.run.dir={tmp_path}/run")
    assert code == 2
    assert err == f"error: hydra.run.dir: cannot create {tmp_path}/run: {tmp_path} does not " \
                  "take new folders (Permission denied); choose a writable folder\n"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_where_no_folder_can_be_made_is_one_line(monkeypatch, capsys):
    """/proc is a folder that root may write to by its permission bits, yet makes none."""
    code, err = _train_cli(monkeypatch, capsys, "hydra.run.dir=/proc/seglab-x")
    assert code == 2
    assert err == "error: hydra.run.dir: cannot create /proc/seglab-x: /proc does not take new " \
                  "folders (No such file or directory); choose a writable folder\n"


def test_the_write_check_leaves_nothing_behind(tmp_path):
    from seglab.cli.arguments import unwritable_output
    assert unwritable_output([f"hydra.run.dir={tmp_path}/new/run"]) is None
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_before_training(tiny_train_cfg, monkeypatch):
    cfg = tiny_train_cfg("full")
    usage = type("Usage", (), {"free": 20 * 2**20})
    monkeypatch.setattr("seglab.runs.folder.shutil.disk_usage", lambda path: usage)
    with pytest.raises(Exception, match=r"paths.output_dir: .* has 20 MB free; this run's "
                                         r"checkpoints need about \d+ MB"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
