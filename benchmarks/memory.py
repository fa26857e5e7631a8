"""Benchmark "memory": the peak resident memory (RSS) of the default `make train` run, that is
`seglab-train` with no arguments, as a fresh process writing into a temporary folder; its
first steps by default, the whole run on request."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import Row, peak_rss_mib, progress, single

NAME = "memory"
BIN = Path(sys.executable).parent
STEPS = 10
# the test suite's run: a few samples of a small size, one epoch
TOY_OVERRIDES = ["data.lengths={train:4,val:4,test:4}", "data.input_size=[32,32]",
                 "data.batch_size=4", "trainer.max_epochs=1"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("peak memory (benchmark 'memory')")
    group.add_argument("--memory-steps", type=int, default=STEPS, metavar="N",
                       help="training steps of the measured default run, its validation, test "
                            "and plots included; 0: the whole default run (default: "
                            "%(default)s)")
    group.add_argument("--memory-runs", type=int, default=1, metavar="N",
                       help="runs measured; the figure is their median (default: %(default)s)")


def command(args: argparse.Namespace) -> tuple[list[str], str]:
    """The measured command line and its label in the table."""
    argv = [str(BIN / "seglab-train")]
    if args.toy:
        return argv + TOY_OVERRIDES, "seglab-train, toy run (32², 4 samples)"
    if args.memory_steps:
        return argv + [f"++trainer.max_steps={args.memory_steps}"], \
            f"make train, first {args.memory_steps} steps"
    return argv, "make train, whole run"


def run(args: argparse.Namespace) -> list[Row]:
    """The median peak RSS of the measured runs."""
    argv, label = command(args)
    progress(f"{NAME}: peak RSS of {label}: {' '.join(['seglab-train', *argv[1:]])}")
    peaks = []
    for _ in range(args.memory_runs):
        with tempfile.TemporaryDirectory(prefix="seglab-bench-memory-") as folder:
            environment = {**os.environ, "SEGLAB_LOG_DIR": folder}
            peaks.append(peak_rss_mib(argv, Path(folder), environment))
    return [single(NAME, f"peak RSS, {label}", "MiB", peaks)]
