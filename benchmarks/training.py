"""Benchmark "training": the framework's overhead. seglab's training (its Trainer,
SegmentationModule, metrics and logging; checkpointing off) against a hand-written PyTorch loop
with the same network, data loader, loss and optimizer; seglab's validation with metrics
against a bare forward loop; and the speed switches, each against plain seglab.

Both sides of a comparison are built from the same composed config, each with its own
DataModule (the synthetic dataset keeps the scenes it draws: sharing one would let the second
side read what the first one drew). seglab's `trainer.fit` runs in a thread of its own and is
paused between measurements, so one fit serves the warm-up and every repeat: a measurement is
the next steps of a long run, as the hand-written loop's is.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from benchmarks.measure import Row, compare, interleaved, progress
from seglab.data.datamodule import SegmentationDataModule
from seglab.engine.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_module,
    build_trainer,
)
from seglab.runs.config import compose_config

NAME = "training"
TRAIN_GOAL, VALIDATION_GOAL = 0.97, 0.97
SWITCHES = {"channels_last": "model.channels_last", "compile": "model.compile",
            "normalize_on_device": "data.normalize_on_device"}
DEFAULT_SWITCHES = ["channels_last", "normalize_on_device"]  # compiling takes minutes on a CPU
PRECISION_LABELS = {"32-true": "fp32", "bf16-mixed": "bf16"}
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}
SECONDS, TOY_SECONDS = 2.0, 0.0
TOY_VAL_BATCHES = 1
# the measured run, as `make train` runs it but checkpointing, the progress bar and the model
# summary off (they print, or run before the first step), no validation while fitting, and
# epochs enough for any measurement; `++` sets a Trainer argument whether or not
# trainer/default.yaml names it
RUN_OVERRIDES = ["logger=csv", "++trainer.enable_checkpointing=false",
                 "++trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
                 "++trainer.num_sanity_val_steps=0", "++trainer.max_epochs=1000"]

warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*limit_(train|val)_batches.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("framework overhead (benchmark 'training')")
    group.add_argument("--seconds", type=float, metavar="S",
                       help="a training measurement also lasts at least this long "
                            f"(default: {SECONDS:g}; --toy: {TOY_SECONDS:g})")
    group.add_argument("--val-batches", type=int, metavar="N",
                       help="validation batches per measured pass, after one warm-up batch, "
                            "at the first size (default: the whole val split; --toy: "
                            f"{TOY_VAL_BATCHES})")
    group.add_argument("--switches", nargs="*", choices=sorted(SWITCHES), metavar="NAME",
                       default=DEFAULT_SWITCHES,
                       help="speed switches measured against plain seglab, at the first size "
                            f"and the config's own precision, of: {' '.join(SWITCHES)} "
                            f"(default: {' '.join(DEFAULT_SWITCHES)}; none: no name)")


@dataclass(frozen=True)
class Case:
    """One measured setting: square inputs of `size`, `batch` images a step, a precision."""

    size: int
    batch: int
    precision: str | None  # a Lightning precision; None: the config's own

    def overrides(self, model: str, encoder: str) -> list[str]:
        chosen = [f"model={model}", f"encoder={encoder}",
                  f"data.input_size=[{self.size},{self.size}]", f"data.batch_size={self.batch}"]
        return chosen + ([] if self.precision is None else [f"trainer.precision={self.precision}"])

    def label(self, precision: str) -> str:
        return f"{self.size}²×{self.batch} {PRECISION_LABELS.get(precision, precision)}"


@dataclass(frozen=True)
class Span:
    """How long one training measurement runs: at least `steps` steps and `seconds` seconds
    (a fixed time keeps small steps from being timed one by one, large ones from taking
    minutes)."""

    steps: int
    seconds: float

    def reached(self, steps: int, started: float) -> bool:
        return steps >= self.steps and time.perf_counter() - started >= self.seconds


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """Autocast exactly as Lightning's mixed-precision plugin enters it (no weight cache)."""
    dtype = AUTOCAST[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def device_of(cfg: DictConfig) -> torch.device:
    """The device Lightning picks for this config's accelerator."""
    use_gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if use_gpu else "cpu")


def measured_trainer(cfg: DictConfig, clock: Callback) -> Trainer:
    """seglab's Trainer from the config with its callbacks and loggers, checkpointing
    callbacks left out, and `clock` added."""
    callbacks = [callback for callback in build_callbacks(cfg)
                 if not isinstance(callback, ModelCheckpoint)]
    return build_trainer(cfg, [*callbacks, clock], build_loggers(cfg))


class StepClock(Callback):
    """Pauses a fit running in another thread between measurements. `measure` lets the next
    span of training steps run and returns their images/s, timed from the end of the step
    before them to the end of the last (loading, step and logging all counted)."""

    def __init__(self, span: Span, device: torch.device) -> None:
        self.span, self.device = span, device
        self._go, self._done = threading.Semaphore(0), threading.Semaphore(0)
        self._steps = self._images = 0
        self._started = self.rate = self.first_step_seconds = None
        self.stopping = self.ended = False
        self.error: BaseException | None = None

    def measure(self) -> float:
        self._go.release()
        self._done.acquire()
        if self.ended:
            raise RuntimeError("seglab's fit ended before the measurement did") from self.error
        return self.rate

    def stop(self) -> None:
        """Let the fit run on to its end: it stops after the step under way."""
        self.stopping = True
        self._go.release()

    def finish(self, error: BaseException | None) -> None:
        """Called by the fit's thread when the fit returns or fails: nobody waits for it."""
        self.ended, self.error = True, error
        self._done.release()

    def _wait_for_next(self, trainer: Trainer) -> None:
        self._go.acquire()
        if self.stopping:
            trainer.should_stop = True
        self._steps = self._images = 0
        self._started = time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._wait_for_next(trainer)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs,
                           batch: dict, batch_idx: int) -> None:
        if self.stopping:
            return
        self._steps += 1
        self._images += len(batch["mask"])
        if self.first_step_seconds is None:
            synchronize(self.device)
            self.first_step_seconds = time.perf_counter() - self._started
        if not self.span.reached(self._steps, self._started):
            return
        synchronize(self.device)
        self.rate = self._images / (time.perf_counter() - self._started)
        self._done.release()
        self._wait_for_next(trainer)


class SeglabTraining:
    """seglab's training of one config, one long `trainer.fit` in a thread; each call runs
    its next span of steps and returns their images/s; `close` ends the fit."""

    def __init__(self, cfg: DictConfig, span: Span) -> None:
        self.clock = StepClock(span, device_of(cfg))
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.class_names, datamodule)
        trainer = measured_trainer(cfg, self.clock)
        self.thread = threading.Thread(target=self._fit, args=(trainer, module, datamodule),
                                       daemon=True, name="seglab-fit")
        self.thread.start()

    def _fit(self, trainer: Trainer, module: LightningModule,
             datamodule: SegmentationDataModule) -> None:
        error = None
        try:
            trainer.fit(module, datamodule=datamodule)
        except BaseException as failure:  # handed to the measuring thread, raised there
            error = failure
        self.clock.finish(error)

    def __call__(self) -> float:
        return self.clock.measure()

    def close(self) -> None:
        self.clock.stop()
        self.thread.join()


def endless(loader) -> Iterator[dict]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


class BareTraining:
    """The hand-written loop a PyTorch user would write: the network, loss and optimizer
    seglab builds from the config, the DataModule's train loader (uint8 images normalised
    after the transfer, as its batches need), autocast as Lightning's."""

    def __init__(self, cfg: DictConfig, span: Span) -> None:
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.class_names, datamodule)
        self.device, self.span = device_of(cfg), span
        self.precision = str(cfg.trainer.precision)
        self.net, self.loss = module.net.to(self.device).train(), module.loss
        self.optimizer = module.optimizer_factory(params=self.net.parameters())
        self.prepare = datamodule.prepare_images
        self.batches = endless(datamodule.train_dataloader())

    def step(self, batch: dict) -> None:
        images = self.prepare(batch["image"].to(self.device, non_blocking=True))
        masks = batch["mask"].to(self.device, non_blocking=True)
        with autocast(self.precision, self.device):
            logits = self.net(images)
        loss = self.loss(logits.float(), masks)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def __call__(self) -> float:
        started, steps, images = time.perf_counter(), 0, 0
        while not self.span.reached(steps, started):
            batch = next(self.batches)
            self.step(batch)
            steps, images = steps + 1, images + len(batch["mask"])
        synchronize(self.device)
        return images / (time.perf_counter() - started)


class ValidationClock(Callback):
    """Times a validation pass from the end of its first batch (a warm-up) to its very end,
    the metrics computed and logged."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._started = self.rate = None
        self._images = 0

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started, self._images = None, 0

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs,
                                batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._started is None:
            synchronize(self.device)
            self._started = time.perf_counter()
        else:
            self._images += len(batch["mask"])

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synchronize(self.device)
        self.rate = self._images / (time.perf_counter() - self._started)


def seglab_validation(cfg: DictConfig) -> Callable[[], float]:
    """A measurement: one `trainer.validate` pass of seglab's module, in images/s."""
    clock = ValidationClock(device_of(cfg))
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names, datamodule)
    trainer = measured_trainer(cfg, clock)

    def measure() -> float:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        return clock.rate
    return measure


def epoch_scores(confmat: torch.Tensor, losses: list[torch.Tensor]) -> tuple[float, float]:
    """The hand-written loop's mean loss and mIoU."""
    diagonal = confmat.diag().double()
    union = confmat.sum(0) + confmat.sum(1) - diagonal
    return float(torch.stack(losses).mean()), float((diagonal / union).nanmean())


def bare_validation(cfg: DictConfig, batches: int | None,
                    scored: bool = True) -> Callable[[], float]:
    """A measurement: a hand-written validation loop over the first `batches` val batches
    (None: all) under `torch.no_grad` (uint8 images normalised first), in images/s, the first
    batch a warm-up. `scored`: as a user would write it, the same loss in fp32, the argmax and
    a confusion matrix (torchvision's reference recipe: bincount of target × classes +
    prediction over the pixels not ignored), the mean loss and mIoU at the end; otherwise the
    network's forward alone."""
    device, precision = device_of(cfg), str(cfg.trainer.precision)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.class_names, datamodule)
    net, loss_of = module.net.to(device).eval(), module.loss
    classes, loader = len(datamodule.class_names), datamodule.val_dataloader()

    def measure() -> float:
        started, images, losses = None, 0, []
        confmat = torch.zeros(classes, classes, dtype=torch.long, device=device)
        with torch.no_grad():
            for index, batch in enumerate(itertools.islice(loader, batches)):
                with autocast(precision, device):
                    logits = net(datamodule.prepare_images(batch["image"].to(device)))
                if scored:
                    target = batch["mask"].to(device)
                    losses.append(loss_of(logits.float(), target))
                    counted = (target >= 0) & (target < classes)
                    confmat += torch.bincount(classes * target[counted] + logits.argmax(1)[
                        counted], minlength=classes**2).reshape(classes, classes)
                if index == 0:
                    synchronize(device)
                    started = time.perf_counter()
                else:
                    images += len(batch["mask"])
            if scored:  # read on the host at the end, as seglab logs its scores
                epoch_scores(confmat, losses)
        synchronize(device)
        return images / (time.perf_counter() - started)
    return measure


def run_config(args: argparse.Namespace, case: Case, output_dir: Path,
               val_batches: int | float = 0, extra: Sequence[str] = ()) -> DictConfig:
    """The composed train config of one case, writing into `output_dir`, `val_batches` a
    validation pass (1.0: all)."""
    overrides = [*case.overrides(args.model, args.encoder), *RUN_OVERRIDES,
                 f"++trainer.limit_val_batches={val_batches}", *extra]
    return compose_config("train", output_dir, overrides)


def training_row(args: argparse.Namespace, case: Case, span: Span, folder: Path) -> Row:
    """seglab's training against the hand-written loop, in images/s."""
    cfg = run_config(args, case, folder / "fit")
    label = case.label(cfg.trainer.precision)
    progress(f"{NAME}: train {label}: seglab vs bare loop")
    bare = BareTraining(cfg, span)
    seglab = SeglabTraining(cfg, span)
    try:
        figures = interleaved({"seglab": seglab, "bare": bare}, args.repeats, args.warmup)
    finally:
        seglab.close()
    return compare(NAME, f"train {label}", "img/s", figures, TRAIN_GOAL)


def validation_row(args: argparse.Namespace, case: Case, batches: int | None,
                   folder: Path) -> list[Row]:
    """seglab's validation (loss, confusion matrix, metrics logged) against a hand-written loop
    doing the same (the goal) and against a forward-only loop (reported), over one warm-up
    batch and `batches` more (None: the whole val split), in images/s."""
    limit = None if batches is None else batches + 1
    cfg = run_config(args, case, folder / "validate", val_batches=limit or 1.0)
    label = case.label(cfg.trainer.precision)
    progress(f"{NAME}: validate {label}: seglab vs bare loop with scores and forward only, "
             f"{'the whole val split' if batches is None else f'{batches} batches'}")
    sides = {"seglab": seglab_validation(cfg), "bare": bare_validation(cfg, limit),
             "forward only": bare_validation(cfg, limit, scored=False)}
    figures = interleaved(sides, args.repeats, args.warmup)
    seglab = {"seglab": figures["seglab"]}
    return [compare(NAME, f"validate {label}", "img/s", {**seglab, "bare": figures["bare"]},
                    VALIDATION_GOAL),
            compare(NAME, f"validate vs forward only {label}", "img/s",
                    {**seglab, "forward only": figures["forward only"]})]


def switched(on: str | None = None) -> list[str]:
    """The overrides that turn switch `on` on and every other off (all off: plain seglab)."""
    return [f"{key}={str(name == on).lower()}" for name, key in SWITCHES.items()]


def switch_rows(args: argparse.Namespace, case: Case, span: Span, folder: Path) -> list[Row]:
    """Each switch's seglab training against plain seglab's (every switch off), all
    interleaved in one run. The first step (where torch.compile compiles) is in the warm-up,
    out of the figures; the time it took beyond a steady step is reported."""
    plain = run_config(args, case, folder / "plain", extra=switched())
    label = case.label(plain.trainer.precision)
    progress(f"{NAME}: switches {' '.join(args.switches)} vs plain seglab, train {label}")
    runners = {"plain": SeglabTraining(plain, span)}
    for switch in args.switches:
        runners[switch] = SeglabTraining(run_config(args, case, folder / switch,
                                                    extra=switched(switch)), span)
    try:
        figures = interleaved(runners, args.repeats, args.warmup)
    finally:
        for runner in runners.values():
            runner.close()
    first_step_extra = {name: runner.clock.first_step_seconds
                        - case.batch / statistics.median(figures[name])
                        for name, runner in runners.items()}
    rows = []
    for switch in args.switches:
        row = compare(NAME, f"{switch} vs plain, train {label}", "img/s",
                      {switch: figures[switch], "plain": figures["plain"]})
        row.extra = {"first_step_extra_seconds": {side: first_step_extra[side]
                                                  for side in (switch, "plain")}}
        if switch == "compile":
            row.case += f" (compiling: {first_step_extra[switch]:.0f} s)"
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    """Training rows for every size at every precision, validation rows at the first size,
    then the switch rows."""
    span = Span(args.steps, args.seconds if args.seconds is not None else
                TOY_SECONDS if args.toy else SECONDS)
    val_batches = args.val_batches or (TOY_VAL_BATCHES if args.toy else None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="seglab-bench-train-") as folder:
        for index, (size, batch) in enumerate(zip(args.size, args.batch, strict=True)):
            for precision in args.precision:
                case = Case(size, batch, precision)
                case_folder = Path(folder) / f"{size}-{precision}"
                rows.append(training_row(args, case, span, case_folder))
                if index == 0:
                    rows += validation_row(args, case, val_batches, case_folder)
                gc.collect()
        if args.switches:
            default = Case(args.size[0], args.batch[0], None)
            rows += switch_rows(args, default, span, Path(folder) / "switches")
    return rows
