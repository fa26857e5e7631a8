"""The end of a multirun: how many jobs completed, were pruned (a search stopped them early),
failed, crashed or never finished, and the exit code."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seglab.runs.crashes import settled
from seglab.runs.results import read_metrics

FINISHED = ("completed", "pruned")


def job_statuses(sweep_dir: Path) -> dict[str, dict]:
    """metrics.json of each numbered job folder of a sweep (`{}` for a job that never wrote
    one; a job whose process died is "crashed"), in job order."""
    jobs = sorted((path for path in sweep_dir.iterdir() if path.is_dir() and path.name.isdigit()),
                  key=lambda path: int(path.name)) if sweep_dir.is_dir() else []
    return {job.name: settled(job, read_metrics(job / "metrics.json") or {}) for job in jobs}


def sweep_summary(jobs: dict[str, dict]) -> list[str]:
    """One line of counts, then one line per job that did not complete."""
    counts = Counter(job.get("status") or "unfinished" for job in jobs.values())
    counts["unfinished"] += counts.pop("running", 0)
    pruned = f", {counts['pruned']} pruned" if counts["pruned"] else ""
    crashed = f", {counts['crashed']} crashed" if counts["crashed"] else ""
    lines = [f"sweep: {len(jobs)} jobs, {counts['completed']} completed{pruned}, "
             f"{counts['failed']} failed{crashed}, {counts['unfinished']} unfinished"]
    for name, job in jobs.items():
        if job.get("status") in ("failed", "crashed"):
            lines.append(f"{job['status']}: job {name}: {job.get('error', '')}")
        elif job.get("status") not in FINISHED:
            lines.append(f"unfinished: job {name}")
    return lines


class SweepSummary(Callback):
    """Hydra callback: after a multirun, print the summary and exit 1 if any job failed, crashed
    or did not finish (a pruned job finished: the search stopped it on purpose)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = job_statuses(sweep_dir)
        if not jobs:
            return
        for line in sweep_summary(jobs):
            print(line, file=sys.stdout if line.startswith("sweep:") else sys.stderr)
        print(f"sweep folder: {sweep_dir}  (table: seglab-compare {sweep_dir})")
        if any(job.get("status") not in FINISHED for job in jobs.values()):
            raise SystemExit(1)
