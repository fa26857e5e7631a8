"""A run's costs in metrics.json: the test's forward throughput, timed on the network's own
forward passes, and each stage's peak memory."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning import LightningModule, Trainer
from torch.utils.data import DataLoader

from seglab.engine import speed_memory
from seglab.engine.module import by_size
from seglab.engine.speed_memory import SpeedAndMemory, read_peak, reset_peak_rss, start_peak
from seglab.engine.training import train

PASS_SECONDS = 0.25  # each forward pass, on the test's clock
CPU = torch.device("cpu")


class Clock:
    now = 0.0


class ClockedNet(torch.nn.Module):
    """Takes PASS_SECONDS of the test's clock per forward pass."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.passes = 0

    def forward(self, images):
        self.clock.now += PASS_SECONDS
        self.passes += 1
        return images


class TwoImagesPerPass(LightningModule):
    """Tests like sliding-window evaluation: several forward passes per batch (two images
    each), a batch of mixed sizes part by part."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def test_step(self, batch, batch_idx):
        for part in by_size(batch):
            for images in part["image"].split(2):
                self.net(images)


def images(count: int) -> dict:
    return {"image": torch.zeros(count, 3, 2, 2)}


def measured(batches: list, timed_batches: int, monkeypatch) -> tuple[dict, ClockedNet]:
    """The figures of a test over `batches`, and the network it ran."""
    clock = Clock()
    monkeypatch.setattr(speed_memory, "perf_counter", lambda: clock.now)
    net, costs = ClockedNet(clock), SpeedAndMemory(timed_batches)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[costs])
    trainer.test(TwoImagesPerPass(net), DataLoader(batches, batch_size=None), verbose=False)
    return costs.figures, net


@pytest.mark.parametrize(("batches", "timed_batches", "images_per_s", "counted"), [
    # warm-up (4 images) left out; then 3 batches of 4 images, 2 passes each: 12 / 1.5 s;
    # the fifth batch runs untimed
    ([images(4), images(4), images(4), images(4), images(2)], 3, 8.0, 3),
    # a batch of mixed sizes (3 + 1 images, 2 + 1 passes), then 4 images in 2: 8 / 1.25 s
    ([images(4), [images(3), images(1)], images(4)], 20, 6.4, 2),
    # a smaller last batch is another shape: left out, unless it is the only one after the
    # warm-up
    ([images(4), images(4), images(2)], 20, 8.0, 1),
    ([images(4), images(3)], 20, 6.0, 1),
    ([images(4)], 20, 8.0, 1),  # a single batch is measured rather than nothing
])
def test_throughput_counts_the_timed_batches_forward_passes(monkeypatch, batches,
                                                            timed_batches, images_per_s,
                                                            counted):
    figures, net = measured(batches, timed_batches, monkeypatch)
    assert net.passes == sum(-(-part["image"].shape[0] // 2) for batch in batches
                             for part in by_size(batch))
    assert figures["test/images_per_s"] == images_per_s
    assert figures["test/speed_batches"] == counted
    assert not net._forward_hooks and not net._forward_pre_hooks  # removed after the test
    assert figures["peak_memory_kind"] in ("rss", "rss_since_start")
    assert figures["peak_memory_mib"] == figures["test/peak_memory_mib"] > 0
    assert "train/peak_memory_mib" not in figures  # no fit: no train figure
    assert not any(key.endswith("_per_process") for key in figures)  # one process


class TwoProcesses:
    """A DDP strategy stand-in: all_gather returns this process's values and then the other
    process's next ones."""

    root_device = CPU

    def __init__(self, other: list[list[float]]) -> None:
        self.other = other

    def all_gather(self, tensor):
        return torch.stack([tensor, torch.tensor(self.other.pop(0), dtype=tensor.dtype)])


def test_under_ddp_each_figure_is_the_sum_of_the_processes(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(speed_memory, "perf_counter", lambda: clock.now)
    monkeypatch.setattr(speed_memory, "read_peak", lambda device, kind: 100.0)
    # the other process: its fit peak; its test images/s, test peak and timed batches
    trainer = SimpleNamespace(strategy=TwoProcesses([[300.0], [50.0, 200.0, 3.0]]), world_size=2)
    module, costs = SimpleNamespace(net=ClockedNet(clock)), SpeedAndMemory()
    costs.on_fit_start(trainer, module)
    costs.on_fit_end(trainer, module)
    costs.on_test_start(trainer, module)
    for batch in (images(4), images(4)):  # this process: 4 images in 0.25 s after the warm-up
        costs.on_test_batch_start(trainer, module, batch, 0)
        module.net(batch["image"])
        costs.on_test_batch_end(trainer, module, None, batch, 0)
    costs.on_test_end(trainer, module)
    figures = costs.figures
    assert figures.pop("peak_memory_kind") in ("rss", "rss_since_start")
    assert figures == {
        "train/peak_memory_mib": 400.0, "train/peak_memory_mib_per_process": [100.0, 300.0],
        "test/images_per_s": 66.0, "test/speed_batches": 1,
        "test/images_per_s_per_process": [16.0, 50.0],
        "test/peak_memory_mib": 300.0, "test/peak_memory_mib_per_process": [100.0, 200.0],
        "peak_memory_mib": 400.0, "peak_memory_mib_per_process": [100.0, 300.0],
    }


# In a fresh process: in a test worker, memory that earlier tests freed (garbage collected,
# glibc returning pages) can leave the resident set during the allocation and hide it (two
# full-suite runs saw the peak move by less than the 200 MiB allocated).
PEAK_OF_AN_ALLOCATION = """
import numpy as np, torch
from seglab.engine.speed_memory import read_peak, start_peak
cpu = torch.device("cpu")
assert start_peak(cpu) == "rss"
before = read_peak(cpu, "rss")
block = np.ones(200 * 2**20 // 8)  # 200 MiB, every page written
grown = read_peak(cpu, "rss") - before
del block
start_peak(cpu)
print(grown, read_peak(cpu, "rss") - before)
"""


@pytest.mark.skipif(not reset_peak_rss(), reason="the peak RSS cannot be reset here")
def test_peak_rss_is_reset_per_stage_and_sees_an_allocation():
    finished = subprocess.run([sys.executable, "-c", PEAK_OF_AN_ALLOCATION], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-2000:]
    grown, after_reset = map(float, finished.stdout.split())
    assert 190 < grown < 230
    assert after_reset < 100  # the next stage starts from what is held now


def test_without_a_resettable_rss_the_peak_since_the_start_is_read(monkeypatch, tmp_path):
    monkeypatch.setattr(speed_memory, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    assert start_peak(CPU) == "rss_since_start"
    assert read_peak(CPU, "rss_since_start") > 10


def test_on_a_gpu_the_peak_is_that_of_its_tensors(monkeypatch):
    resets = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", resets.append)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 3 * 2**20)
    gpu = torch.device("cuda", 1)
    assert start_peak(gpu) == "cuda" and resets == [gpu]
    assert read_peak(gpu, "cuda") == 3.0


def test_a_training_run_reports_its_speed_and_memory(tiny_train_cfg):
    cfg = tiny_train_cfg("costs")  # 16 test images in 2 batches: the second is timed
    metrics, _ = train(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["test/speed_batches"] == 1
    assert 0 < saved["test/images_per_s"] < 1e6
    assert saved["peak_memory_kind"] in ("rss", "rss_since_start")
    train_peak, test_peak = saved["train/peak_memory_mib"], saved["test/peak_memory_mib"]
    assert 50 < test_peak < 100_000 and 50 < train_peak < 100_000  # the process's RSS in MiB
    assert saved["peak_memory_mib"] == max(train_peak, test_peak)
    assert metrics["test/images_per_s"] == saved["test/images_per_s"]
