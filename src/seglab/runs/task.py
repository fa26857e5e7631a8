"""What every entry point does around its work: turning a user's mistake into one clear line
and a failed metrics.json, going on with a sweep, skipping a completed job.

Imports torch and Lightning: entry points import it once a run starts; what they check
before Hydra starts is seglab.cli.arguments."""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seglab.core.distributed import is_rank_zero
from seglab.core.errors import USER_ERRORS, FolderRefused, one_line
from seglab.runs.crashes import close_crash_log
from seglab.runs.folder import skip_completed
from seglab.runs.results import read_metrics, write_metrics_json


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _finish_wandb(failed: bool) -> None:
    """End this run's wandb run, so the next job of a sweep starts its own."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish(exit_code=1 if failed else 0)


def _record_failure(error: Exception, record: Path) -> str:
    """Mark the run failed in its record (keeping what it said while running); the one-line
    message, pointing at a saved traceback when the error is not a user's mistake."""
    message = one_line(error)
    output_dir = record.parent
    if not is_rank_zero():
        return message
    if not isinstance(error, USER_ERRORS):
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "traceback.txt").write_text(traceback.format_exc())
        message = f"{message} (traceback: {output_dir / 'traceback.txt'})"
    header = read_metrics(record) or {}
    write_metrics_json(record, {**header, "status": "failed", "error": message})
    return message


def flush_denormals(cfg: DictConfig) -> None:
    """`flush_denormal: true`: the CPU treats denormal floats (below 1.2e-38) as zero. They
    are exact zeros for any model's purposes, and x86 CPUs compute with them up to 100 times
    slower: ConvNeXt's 1e-6 layer scales and EfficientNet's small activations make them."""
    flush = cfg.get("flush_denormal")
    if flush is not None:
        import torch

        torch.set_flush_denormal(bool(flush))


def run_task(task: Callable[[DictConfig], tuple[dict, dict]], cfg: DictConfig,
             record: str = "metrics.json") -> float | None:
    """Run `task(cfg)` and return the metric named by `optimized_metric`, if any.

    Any error leaves the run's `record` (metrics.json; predictions.json for seglab-predict)
    with status "failed" and a one-line "error" (unless the
    folder already held a completed one). Alone, a user error (bad config value, missing file,
    bad checkpoint) prints that line and exits 1; other errors show their traceback. Inside a
    multirun every error prints the line and returns NaN, so the sweep goes on and a sweeper
    such as Optuna records a failed trial; `sweep.fail_fast=true` stops the sweep instead.
    `sweep.skip_completed=true` returns a completed job's saved result without running it.
    Set HYDRA_FULL_ERROR=1 for the full traceback.
    """
    output_dir = Path(cfg.paths.output_dir)
    metric_name = cfg.get("optimized_metric")
    saved = read_metrics(output_dir / record)
    if skip_completed(cfg) and saved and saved.get("status") == "completed":
        print(f"skipped: {output_dir} already completed (sweep.skip_completed=true)")
        return saved.get(metric_name) if metric_name else None
    failed = True
    flush_denormals(cfg)
    try:
        metrics, _ = task(cfg)
        failed = False
    except Exception as error:
        message = one_line(error) if isinstance(error, FolderRefused) \
            else _record_failure(error, output_dir / record)
        multirun = _in_multirun()
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or \
                (not multirun and not isinstance(error, USER_ERRORS)):
            raise
        print(f"error: {message}", file=sys.stderr)
        if not multirun or OmegaConf.select(cfg, "sweep.fail_fast", default=False):
            raise SystemExit(1) from None
        return math.nan
    finally:
        _finish_wandb(failed)
        close_crash_log()
    return metrics.get(metric_name) if metric_name else None
