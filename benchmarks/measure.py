"""The measuring core every benchmark shares: interleaved repeats, medians, result rows.

A comparison runs its sides in alternation (A B A B ...) after warm-up, so that a machine
that slows down or speeds up during the run affects both sides alike; each side's figure is
the median of its repeats, and the ratio is taken between the two medians of the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAXRSS_PER_MIB = 2**20 if sys.platform == "darwin" else 2**10  # macOS counts bytes, Linux KiB


@dataclass
class Row:
    """One line of the results table: a measured case, its figure per side, and the ratio of
    the first side to the second (None for a single-side measurement) against its goal;
    `extra` holds what the figures leave out (such as a compile time kept out of them)."""

    benchmark: str
    case: str
    unit: str
    values: dict[str, float]
    ratio: float | None = None
    goal: str | None = None
    met: bool | None = None
    repeats: list[dict[str, float]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def progress(message: str) -> None:
    """One plain line on stderr per measurement, so a run of minutes shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interleaved(sides: dict[str, Callable[[], float]], repeats: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Call every side `warmup` times (discarded), then `repeats` rounds of one call per side
    in turn; each call returns its own figure (a rate such as images/s, or a time). Returns
    every side's figures in order."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for measure in sides.values():
            measure()
    figures: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, measure in sides.items():
            figures[name].append(float(measure()))
    return figures


def compare(benchmark: str, case: str, unit: str, figures: dict[str, list[float]],
            goal: float | None = None, higher_is_better: bool = True) -> Row:
    """A row from interleaved figures: each side's median, the first side's median over the
    second's, and whether that ratio meets `goal` (at least `goal` when higher is better,
    at most `goal` otherwise)."""
    medians = {name: statistics.median(values) for name, values in figures.items()}
    ratio = met = None
    if len(medians) >= 2:
        first, second = list(medians.values())[:2]
        ratio = first / second if second else float("inf")
        if goal is not None:
            met = ratio >= goal if higher_is_better else ratio <= goal
    goal_text = None if goal is None else f"{'≥' if higher_is_better else '≤'} {goal:g}"
    rounds = [dict(zip(figures, values, strict=True))
              for values in zip(*figures.values(), strict=True)]
    return Row(benchmark, case, unit, medians, ratio, goal_text, met, rounds)


def single(benchmark: str, case: str, unit: str, values: list[float], goal: float | None = None,
           higher_is_better: bool = False) -> Row:
    """A row for one measured quantity (a wall time, a peak memory): its median, checked
    against an absolute `goal` when there is one."""
    value = statistics.median(values)
    met = None
    if goal is not None:
        met = value >= goal if higher_is_better else value <= goal
    goal_text = None if goal is None else f"{'≥' if higher_is_better else '<'} {goal:g} {unit}"
    return Row(benchmark, case, unit, {"value": value}, None, goal_text, met,
               [{"value": v} for v in values])


def peak_rss_mib(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run `argv` in `cwd`, its output to `cwd/output.log`, and return its peak resident
    memory in MiB as the kernel counts it for that one child (`wait4`; the peaks of its own
    children are included). A failing command is an error showing its output's end."""
    log = cwd / "output.log"
    with open(log, "w") as output:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit status {process.returncode}; its output "
                           f"ends:\n{log.read_text()[-3000:]}")
    return usage.ru_maxrss / MAXRSS_PER_MIB
