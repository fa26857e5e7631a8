"""What every entry point does around its work: the run-folder guard, the saved config,
and turning a user's mistake into one clear line and a failed metrics.json.

Imports torch and Lightning: entry points import it once a run starts; what they check
before Hydra starts is seglab.cli.arguments."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import seed_everything
from omegaconf import DictConfig, OmegaConf

from seglab.core.distributed import is_rank_zero, log_suffix
from seglab.core.errors import USER_ERRORS, ConfigError, FolderRefused, one_line
from seglab.runs.config import check_config, job_overrides, select_sole_encoder
from seglab.runs.crashes import close_crash_log, open_crash_log, process_identity
from seglab.runs.results import read_metrics, read_status, write_metrics_json
from seglab.runs.resume import resume_folder
from seglab.runs.summary import print_run_summary
from seglab.runs.wandb_setup import check_wandb_online, refuse_api_key


def _skip_completed(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "sweep.skip_completed", default=False))


def guard_run_folder(output_dir: Path, rerun_unfinished: bool = False) -> None:
    """Refuse to run into a folder that already holds a finished run's results. With
    `rerun_unfinished`, the checkpoints of a run that never completed are kept aside in
    `checkpoints.unfinished/` and the folder is used again."""
    if read_status(output_dir / "metrics.json") == "completed":
        raise FolderRefused(f"run folder {output_dir} already holds a finished run; "
                          "choose a new hydra.run.dir (nothing was changed)")
    checkpoints = output_dir / "checkpoints"
    if not any(checkpoints.glob("*.ckpt")):
        return
    if not rerun_unfinished:
        raise FolderRefused(f"run folder {output_dir} holds checkpoints of a run that did not "
                          "complete; choose a new hydra.run.dir, or rerun the sweep with "
                          "sweep.skip_completed=true (nothing was changed)")
    kept = output_dir / "checkpoints.unfinished"
    shutil.rmtree(kept, ignore_errors=True)
    checkpoints.rename(kept)


def refuse_run_folder(output_dir: Path, key: str) -> None:
    """For commands that write beside a run (predict, export): never into a training or
    evaluation run's folder, whose saved config they would replace."""
    if (output_dir / "metrics.json").exists() or (output_dir / "checkpoints").exists():
        raise FolderRefused(f"{key}: {output_dir} is a training or evaluation run folder; choose "
                          "a new folder (nothing was changed)")


def run_overrides(cfg: DictConfig) -> list[str]:
    """This run's overrides: the command line's, or for a reproduction the source run's
    followed by its own."""
    reproduced = OmegaConf.select(cfg, "reproduces.overrides", default=None)
    return job_overrides() if reproduced is None else list(reproduced)


def save_run_config(cfg: DictConfig, output_dir: Path) -> None:
    """`.hydra/config.yaml` (resolved) and `.hydra/overrides.yaml` of this run."""
    folder = output_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(
        run_overrides(cfg))))


def running_header(cfg: DictConfig, output_dir: Path) -> dict:
    """What metrics.json says while the run is under way, so a killed sweep shows the jobs
    that never finished."""
    return {"status": "running", "model": OmegaConf.select(cfg, "model.name"),
            "encoder": OmegaConf.select(cfg, "encoder.name"),
            "data": OmegaConf.select(cfg, "data.name"), "seed": OmegaConf.select(cfg, "seed"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "overrides": run_overrides(cfg),
            "run_dir": str(output_dir), **process_identity()}


def lightning_logs_to_the_run_log() -> None:
    """Lightning keeps its messages to its own console handler when it is imported before
    logging is set up; once Hydra has set up the run's handlers (console and <run>/train.log),
    hand them over."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        lightning = logging.getLogger(name)
        if logging.getLogger().handlers and not lightning.propagate:
            for handler in list(lightning.handlers):
                lightning.removeHandler(handler)
            lightning.propagate = True


def start_run(cfg: DictConfig) -> Path:
    """Check the folder, save the config, mark the run as running (naming its process), send
    fatal signals' reports to crash.log, check the config, seed everything: the run folder. A
    resumed run keeps its saved config and header; the other processes of a DDP run write
    only their crash.rank<N>.log, when they crash."""
    output_dir = Path(cfg.paths.output_dir)
    refuse_api_key(cfg)  # before anything is saved: no API key in the run folder
    resumed = resume_folder(cfg) is not None
    if not resumed:  # a resumed run's saved config has its encoder already
        select_sole_encoder(cfg, job_overrides())
    if is_rank_zero() and resumed:
        header = read_metrics(output_dir / "metrics.json") or running_header(cfg, output_dir)
        header.pop("error", None)
        write_metrics_json(output_dir / "metrics.json",
                           {**header, "status": "running", **process_identity()})
    elif is_rank_zero():
        guard_run_folder(output_dir, rerun_unfinished=_skip_completed(cfg))
        save_run_config(cfg, output_dir)  # saved first: a run refused by the checks keeps it
        write_metrics_json(output_dir / "metrics.json", running_header(cfg, output_dir))
    open_crash_log(output_dir, log_suffix())  # a fatal signal's report, from now on
    check_config(cfg)
    check_wandb_online(cfg)
    lightning_logs_to_the_run_log()
    seed_everything(cfg.seed, workers=True)
    return output_dir


def check_free_space(output_dir: Path, checkpoint_bytes: int) -> None:
    """Before training: room for the checkpoints (best, last, and last's temporary copy while
    it is replaced), or one line now instead of a failed save hours later."""
    needed = 3 * checkpoint_bytes + 50 * 2**20
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise ConfigError(f"paths.output_dir: {output_dir} has {free / 2**20:.0f} MB free; this "
                          f"run's checkpoints need about {needed / 2**20:.0f} MB: free some "
                          "space or choose another folder with hydra.run.dir=<folder>")


def finish_run(metrics: dict, output_dir: Path) -> None:
    """Write metrics.json and print the per-class table with the run folder."""
    write_metrics_json(output_dir / "metrics.json", metrics)
    close_crash_log()
    print_run_summary(metrics, metrics["class_names"], str(output_dir))


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
    if _skip_completed(cfg) and saved and saved.get("status") == "completed":
        print(f"skipped: {output_dir} already completed (sweep.skip_completed=true)")
        return saved.get(metric_name) if metric_name else None
    failed = True
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
