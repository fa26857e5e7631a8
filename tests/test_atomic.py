"""Checkpoints and metrics.json are replaced in one step: a process killed mid-write leaves
the previous file whole, and its temporary file is cleaned up by the next write."""

import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from seglab.core.atomic import atomic_writer, temp_path, write_atomically
from seglab.engine.checkpoint_io import AtomicCheckpointIO
from seglab.runs.results import write_metrics_json


def _stray_temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def _kill_mid_write(target: Path, write_forever: Callable, below: int) -> Path:
    """Run `write_forever` in a forked child, SIGKILL it while its temporary file for
    `target` holds between 1 and `below` bytes (`target` itself must not change meanwhile);
    returns that left-over temporary file."""
    before = target.read_bytes()
    child = multiprocessing.get_context("fork").Process(target=write_forever, daemon=True)
    child.start()
    temp = target.with_name(f".{target.name}.{child.pid}.tmp")
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline and child.is_alive():
            assert target.stat().st_size == len(before), "the target changed mid-write"
            try:
                size = temp.stat().st_size
            except FileNotFoundError:
                continue
            if 0 < size < below:
                os.kill(child.pid, signal.SIGKILL)
                break
        else:
            pytest.fail(f"never saw {temp.name} mid-write (child exit code {child.exitcode})")
    finally:
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert child.exitcode == -signal.SIGKILL
    assert temp.exists(), "the kill did not land between writing and renaming"
    assert target.read_bytes() == before
    return temp


def test_a_kill_while_saving_a_checkpoint_leaves_the_previous_one(tmp_path):
    target = tmp_path / "checkpoints" / "best.ckpt"
    previous = {"state_dict": {"w": torch.arange(4.0)}, "epoch": 3}
    AtomicCheckpointIO().save_checkpoint(previous, target)
    big = {"state_dict": {f"w{i}": torch.full((1_000_000,), float(i)) for i in range(50)}}

    def save_forever():
        plugin = AtomicCheckpointIO()
        while True:
            plugin.save_checkpoint(big, target)

    left_over = _kill_mid_write(target, save_forever, below=100_000_000)  # of 200 MB
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))

    AtomicCheckpointIO().save_checkpoint({"epoch": 4}, target)  # the next save cleans up
    assert not left_over.exists() and _stray_temp_files(target.parent) == []
    assert torch.load(target, weights_only=True) == {"epoch": 4}


def test_a_kill_while_writing_metrics_json_leaves_the_previous_one(tmp_path):
    target = tmp_path / "metrics.json"
    previous = {"status": "completed", "val/mIoU": 0.5}
    write_metrics_json(target, previous)
    big = {"status": "completed", "blob": "x" * 50_000_000}

    def write_forever():
        while True:
            write_metrics_json(target, big)

    left_over = _kill_mid_write(target, write_forever, below=25_000_000)
    assert json.loads(target.read_text()) == previous

    write_metrics_json(target, {"status": "completed", "val/mIoU": 0.6})
    assert not left_over.exists() and _stray_temp_files(tmp_path) == []
    assert json.loads(target.read_text())["val/mIoU"] == 0.6


def test_a_failed_write_keeps_the_target_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "notes.txt"
    write_atomically(target, "old\n")
    with pytest.raises(RuntimeError), atomic_writer(target) as file:
        file.write(b"half of the new")
        assert temp_path(target).exists()
        raise RuntimeError("stopped mid-write")
    assert target.read_text() == "old\n" and _stray_temp_files(tmp_path) == []


def test_temp_files_of_running_writers_are_left_alone(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        running = tmp_path / f".best.ckpt.{sleeper.pid}.tmp"
        running.write_bytes(b"still being written")
        write_atomically(tmp_path / "best.ckpt", b"new")
        assert running.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    write_atomically(tmp_path / "best.ckpt", b"newer")
    assert not running.exists()


def test_urls_keep_lightnings_own_save(tmp_path):
    plugin = AtomicCheckpointIO()
    plugin.save_checkpoint({"epoch": 1}, "memory://seglab-test/last.ckpt")
    assert plugin.load_checkpoint("memory://seglab-test/last.ckpt") == {"epoch": 1}


class _ImprovingModel(BoringModel):
    """Its monitored score improves every epoch, so best.ckpt is written over each time."""

    def validation_step(self, batch, batch_idx):
        self.log("val/mIoU", float(self.current_epoch))
        return super().validation_step(batch, batch_idx)


def _trainer(checkpoints: Path, max_epochs: int) -> Trainer:
    checkpoint = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="val/mIoU",
                                 mode="max", save_last=True, auto_insert_metric_name=False)
    return Trainer(max_epochs=max_epochs, limit_train_batches=2, limit_val_batches=1,
                   accelerator="cpu", logger=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[checkpoint],
                   plugins=[AtomicCheckpointIO()])


def test_lightning_saves_and_resumes_through_the_plugin(tmp_path, monkeypatch):
    checkpoints = tmp_path / "checkpoints"
    renamed = []
    real_replace = os.replace

    def recording_replace(source, destination):
        renamed.append(Path(destination).name)
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    trainer = _trainer(checkpoints, max_epochs=2)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    trainer.fit(_ImprovingModel())
    assert renamed.count("best.ckpt") == 2 and renamed.count("last.ckpt") == 2
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]

    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = checkpoints / f".last.ckpt.{finished.pid}.tmp"  # as a killed run leaves it
    stale.write_bytes(b"half a checkpoint")
    resumed = _trainer(checkpoints, max_epochs=3)
    resumed.fit(_ImprovingModel(), ckpt_path="last")
    assert resumed.current_epoch == 3 and resumed.global_step == 6
    assert torch.load(checkpoints / "best.ckpt", weights_only=False)["epoch"] == 2
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
