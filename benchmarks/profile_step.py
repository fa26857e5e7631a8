"""`python -m benchmarks.profile_step [options]`: where one seglab training step spends its
time, as Markdown ready to paste into benchmarks/README.md.

The default `make train` run (checkpointing and the progress bar off) is trained for a few
warm-up steps; then each part of the next steps is clocked (the network's forward, the
backward pass, the optimizer's update, and everything else: loading, loss, metrics,
logging, Lightning's loop), and a few more steps run under torch.profiler for the operators
that take the most time.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.training import (
    PRECISION_LABELS,
    Case,
    device_of,
    measured_trainer,
    run_config,
    synchronize,
)
from seglab.engine.builders import build_datamodule, build_module

PARTS = {"forward": "network forward", "backward": "backward pass",
         "update": "optimizer update"}
REST = "everything else: loading, loss, metrics, logging, Lightning's loop"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet", help="model config (default: %(default)s)")
    parser.add_argument("--encoder", default="resnet18",
                        help="encoder config (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="square input size (default: "
                        "%(default)s)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default: %(default)s)")
    parser.add_argument("--precision", choices=sorted(PRECISION_LABELS),
                        help="Lightning precision (default: the config's own)")
    parser.add_argument("--warmup", type=int, default=3, help="steps first, not measured "
                        "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="clocked steps (default: "
                        "%(default)s)")
    parser.add_argument("--profiled-steps", type=int, default=3,
                        help="steps under torch.profiler (default: %(default)s)")
    parser.add_argument("--top", type=int, default=15, help="operators listed (default: "
                        "%(default)s)")
    return parser.parse_args(argv)


class StepParts(Callback):
    """Clocks the parts of each training step after `warmup` steps for `steps` steps, then
    runs `profiled` steps under torch.profiler and stops the fit. Each part is also a
    `record_function` range, so the profile shows it."""

    def __init__(self, warmup: int, steps: int, profiled: int, device: torch.device) -> None:
        self.warmup, self.steps, self.profiled, self.device = warmup, steps, profiled, device
        self.seconds: dict[str, float] = defaultdict(float)
        self.profiler = profile(activities=[ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if device.type == "cuda" else []))
        self._open: dict[str, tuple[float, record_function]] = {}
        self._step, self._step_started = 0, 0.0

    def _begin(self, part: str) -> None:
        synchronize(self.device)
        self._open[part] = (time.perf_counter(), record_function(PARTS[part]).__enter__())

    def _end(self, part: str) -> None:
        synchronize(self.device)
        started, scope = self._open.pop(part)
        scope.__exit__(None, None, None)
        if self.warmup <= self._step < self.warmup + self.steps:
            self.seconds[part] += time.perf_counter() - started

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        net: nn.Module = pl_module.net
        net.register_forward_pre_hook(lambda *_: self._begin("forward"))
        net.register_forward_hook(lambda *_: self._end("forward"))
        trainer.optimizers[0].register_step_post_hook(lambda *_: self._end("update"))
        self._step_started = time.perf_counter()

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss) -> None:
        self._begin("backward")

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end("backward")

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule,
                                 optimizer) -> None:
        self._begin("update")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs,
                           batch: dict, batch_idx: int) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if self.warmup <= self._step < self.warmup + self.steps:
            self.seconds["step"] += now - self._step_started
        self._step += 1
        if self._step == self.warmup + self.steps:
            self.profiler.__enter__()
        elif self._step == self.warmup + self.steps + self.profiled:
            self.profiler.__exit__(None, None, None)
            trainer.should_stop = True
        self._step_started = time.perf_counter()


def parts_table(seconds: dict[str, float], steps: int) -> str:
    """Each part's milliseconds per step and share of the step, and the share outside the
    network's forward and backward."""
    step = seconds["step"]
    rest = step - sum(seconds[part] for part in PARTS)
    outside = step - seconds["forward"] - seconds["backward"]
    lines = ["| part of a training step | ms per step | share |", "|---|---:|---:|"]
    for label, value in [*((PARTS[part], seconds[part]) for part in PARTS), (REST, rest),
                         ("**whole step**", step),
                         ("**outside the network's forward and backward**", outside)]:
        lines.append(f"| {label} | {1000 * value / steps:.1f} | {100 * value / step:.0f}% |")
    return "\n".join(lines)


def operators_table(profiler: profile, steps: int, top: int) -> str:
    """The `top` operators by self CPU time (the part ranges left out), per step."""
    events = [event for event in profiler.key_averages()
              if event.key not in PARTS.values() and not event.key.startswith("ProfilerStep")]
    total = sum(event.self_cpu_time_total for event in events) or 1.0
    lines = ["| operator | self CPU ms per step | share of self CPU | calls per step |",
             "|---|---:|---:|---:|"]
    for event in sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:top]:
        lines.append(f"| `{event.key}` | {event.self_cpu_time_total / 1000 / steps:.2f} | "
                     f"{100 * event.self_cpu_time_total / total:.1f}% | "
                     f"{event.count / steps:.0f} |")
    return "\n".join(lines)


def report(args: argparse.Namespace, precision: str, device: torch.device,
           parts: StepParts) -> str:
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    return "\n".join([
        f"### One training step: {args.model}-{args.encoder}, {args.size}²×{args.batch}, "
        f"{precision}, {device.type}{threads}", "",
        f"Clocked over {args.steps} steps after {args.warmup} warm-up steps (profiler off):", "",
        parts_table(parts.seconds, args.steps), "",
        f"Top {args.top} operators by self CPU time, torch.profiler over {args.profiled_steps} "
        "more steps:", "",
        operators_table(parts.profiler, args.profiled_steps, args.top)])


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="seglab-profile-") as folder:
        cfg = run_config(args, Case(args.size, args.batch, args.precision), Path(folder))
        device = device_of(cfg)
        parts = StepParts(args.warmup, args.steps, args.profiled_steps, device)
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.class_names, datamodule)
        measured_trainer(cfg, parts).fit(module, datamodule=datamodule)
        print(report(args, str(cfg.trainer.precision), device, parts))


if __name__ == "__main__":
    main()
