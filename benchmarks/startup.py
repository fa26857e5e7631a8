"""Benchmark "startup": the wall time of commands a user types and waits for, each a fresh
process: `seglab-train --help`, a mistyped choice, `seglab-train --cfg job`, `import seglab`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Row, interleaved, progress, single

NAME = "startup"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Command:
    """A command line, the exit status it must end with, and its wall-time goal in seconds."""

    label: str
    argv: list[str]
    status: int
    goal: float | None


COMMANDS = [
    Command("seglab-train --help", [str(BIN / "seglab-train"), "--help"], 0, 1.5),
    Command("seglab-train model=unett (unknown choice)",
            [str(BIN / "seglab-train"), "model=unett"], 2, 1.5),
    Command("seglab-train --cfg job", [str(BIN / "seglab-train"), "--cfg", "job"], 0, 3.0),
    Command("python -c 'import seglab'", [sys.executable, "-c", "import seglab"], 0, None),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: --repeats timed runs of each command after --warmup ones."""


def timed(command: Command, folder: Path) -> Callable[[], float]:
    """A measurement: one run of `command` in `folder`, in seconds; a run that ends with
    another exit status than expected is an error (its output shown)."""
    environment = {**os.environ, "SEGLAB_LOG_DIR": str(folder)}
    environment.pop("HYDRA_FULL_ERROR", None)

    def measure() -> float:
        started = time.perf_counter()
        finished = subprocess.run(command.argv, cwd=folder, env=environment,
                                  capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - started
        if finished.returncode != command.status:
            raise RuntimeError(f"{command.label}: exit status {finished.returncode}, expected "
                               f"{command.status}:\n{finished.stdout}{finished.stderr}")
        return seconds
    return measure


def run(args: argparse.Namespace) -> list[Row]:
    """Every command's median wall time, the commands taken in turn round after round."""
    progress(f"{NAME}: {len(COMMANDS)} commands, {args.repeats} timed runs each")
    with tempfile.TemporaryDirectory(prefix="seglab-bench-startup-") as folder:
        figures = interleaved({command.label: timed(command, Path(folder))
                               for command in COMMANDS}, args.repeats, args.warmup)
    return [single(NAME, command.label, "s", figures[command.label], command.goal)
            for command in COMMANDS]
