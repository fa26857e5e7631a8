"""What a run costs, for metrics.json: the test stage's forward throughput and each stage's
peak memory.

Speed (`test/images_per_s`): hooks on the network time its forward passes alone (not loading,
loss or metrics), at the evaluation size and batch, on the run's device and precision. The
first test batch warms up and is not counted; of the next `TIMED_BATCHES`, those as large as
it are (a test split of one batch: that batch; see `counted_batches`). A batch evaluated on
sliding-window tiles counts the time of all its tile passes. On CUDA each timed pass starts
and ends with `torch.cuda.synchronize`; elsewhere a pass costs two clock readings. The hooks
come off after the last timed batch.

Memory (`<stage>/peak_memory_mib`, each stage from its own reset: fit, i.e. training with its
validations, and test): on a GPU the most PyTorch's tensors held on the run's device
(`torch.cuda.max_memory_allocated`; nvidia-smi shows more: the CUDA context and the
allocator's cache); elsewhere the process's peak resident set size (Linux: VmHWM, reset per
stage through /proc/self/clear_refs; where it cannot be reset, the peak since the process
started, `ru_maxrss`). Data loader worker processes are not counted. A resumed run's fit peak
is that of the resumed process.

Under DDP each process measures its own, and each figure is the sum over processes (the
test split is divided between them, so their throughputs add up, as does their memory), with
`<key>_per_process` listing each rank's figure; `test/speed_batches` is the fewest batches a
process timed. The figures are gathered with the strategy's
all_gather at the stage's end (`on_fit_end`, `on_test_end`), which every process reaches.
"""

from __future__ import annotations

import math
import resource
import sys
from pathlib import Path
from time import perf_counter

import torch
from lightning import Callback, LightningModule, Trainer

from seglab.engine.module import by_size

TIMED_BATCHES = 20  # test batches timed after the warm-up batch
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")
MIB = 2**20


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (VmHWM) to its current size; False where
    the system cannot (not Linux, or /proc not writable)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib(since_start: bool = False) -> float:
    """This process's peak resident set size in MiB: VmHWM (since the last reset), or with
    `since_start` (or without /proc) the peak since the process started."""
    if not since_start:
        try:
            for line in STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
        except OSError:
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else kB


def start_peak(device: torch.device) -> str:
    """Reset the peak memory a stage is measured from; returns what it counts (metrics.json's
    `peak_memory_kind`): "cuda", "rss", or "rss_since_start" where RSS cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda"
    return "rss" if reset_peak_rss() else "rss_since_start"


def read_peak(device: torch.device, kind: str) -> float:
    """The peak memory in MiB since `start_peak` returned `kind`."""
    if kind == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    return peak_rss_mib(since_start=kind == "rss_since_start")


def batch_images(batch: dict | list[dict]) -> int:
    """The images of an evaluation batch (a batch of mixed sizes: over its same-size parts)."""
    return sum(part["image"].shape[0] for part in by_size(batch))


def counted_batches(batches: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The (images, seconds) of the batches that count, of those measured: after the warm-up,
    those as large as it (a smaller last batch is another shape, which a compiled network
    compiles again); any after it if none is; the warm-up itself when it is the only one."""
    if len(batches) < 2:
        return batches
    (size, _), *after = batches
    return [batch for batch in after if batch[0] == size] or after


class SpeedAndMemory(Callback):
    """Measures the run's costs (see the module's docstring); `figures` holds them as
    metrics.json keys: `train/peak_memory_mib` (fit), `test/images_per_s`,
    `test/speed_batches` (the batches timed, on each process), `test/peak_memory_mib`,
    `peak_memory_mib` (each process's larger stage peak) and `peak_memory_kind`; under DDP
    also a `<key>_per_process` list beside each figure, which it sums. A stage that did not
    run leaves its keys out; a test without batches has `test/images_per_s` None."""

    def __init__(self, timed_batches: int = TIMED_BATCHES) -> None:
        self.timed_batches = timed_batches
        self._per_process: dict[str, list[float | None]] = {}  # gathered figures, rank order
        self._speed_batches = 0
        self._kind = "rss"
        self._device = torch.device("cpu")
        self._hooks: list = []
        self._batches: list[tuple[int, float]] = []  # (images, forward seconds), warm-up first
        self._seconds: float | None = None  # the timed batch's forward seconds so far
        self._started = 0.0

    @property
    def figures(self) -> dict:
        """The metrics.json keys measured so far."""
        per_process = dict(self._per_process)
        peaks = [per_process[key] for key in ("train/peak_memory_mib", "test/peak_memory_mib")
                 if key in per_process]
        if peaks:
            per_process["peak_memory_mib"] = [max(stages) for stages in zip(*peaks, strict=True)]
        figures = {}
        for key, column in per_process.items():
            figures[key] = None if None in column else round(sum(column), 1)
            if key == "test/images_per_s":
                figures["test/speed_batches"] = self._speed_batches
            if len(column) > 1:
                figures[f"{key}_per_process"] = column
        if peaks:
            figures["peak_memory_kind"] = self._kind
        return figures

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._kind = start_peak(trainer.strategy.root_device)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._gather(trainer, {"train/peak_memory_mib": read_peak(
            trainer.strategy.root_device, self._kind)})

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._device = trainer.strategy.root_device
        self._kind = start_peak(self._device)
        self._batches, self._seconds = [], None
        self._hooks = [pl_module.net.register_forward_pre_hook(self._before),
                       pl_module.net.register_forward_hook(self._after)]

    def on_test_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch,
                            batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._hooks:
            self._seconds = 0.0

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._seconds is None:
            return
        self._batches.append((batch_images(batch), self._seconds))
        self._seconds = None
        if len(self._batches) > self.timed_batches:
            self._remove_hooks()

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
        timed = counted_batches(self._batches)
        images = sum(count for count, _ in timed)
        seconds = sum(elapsed for _, elapsed in timed)
        self._gather(trainer, {
            "test/images_per_s": images / seconds if seconds > 0 else math.nan,
            "test/peak_memory_mib": read_peak(self._device, self._kind),
            "test/speed_batches": len(timed),
        })
        self._speed_batches = int(min(self._per_process.pop("test/speed_batches")))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule,
                     exception: BaseException) -> None:
        self._remove_hooks()

    def _before(self, net: torch.nn.Module, args) -> None:
        if self._seconds is not None:
            self._synchronize()
            self._started = perf_counter()

    def _after(self, net: torch.nn.Module, args, output) -> None:
        if self._seconds is not None:
            self._synchronize()
            self._seconds += perf_counter() - self._started

    def _synchronize(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        elif self._device.type == "mps":
            torch.mps.synchronize()

    def _remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _gather(self, trainer: Trainer, values: dict[str, float]) -> None:
        """Every process's `values`, in one collective when there are several (NaN: not
        measured, kept as None). float32: Apple's MPS has no float64."""
        rows = [list(values.values())]
        if trainer.world_size > 1:
            local = torch.tensor(rows[0], dtype=torch.float32,
                                 device=trainer.strategy.root_device)
            rows = trainer.strategy.all_gather(local).reshape(-1, len(values)).cpu().tolist()
        for index, key in enumerate(values):
            self._per_process[key] = [None if math.isnan(row[index]) else round(row[index], 1)
                                      for row in rows]
