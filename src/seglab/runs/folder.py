"""A run folder from start to finish: refused when it holds a finished run, started (or
taken up again by a resumed run) with its saved config and a running metrics.json, and
finished with the completed metrics.json and the summary on the console."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lightning import seed_everything
from omegaconf import DictConfig, OmegaConf

from seglab.core.distributed import is_rank_zero, log_suffix
from seglab.core.errors import ConfigError, FolderRefused
from seglab.runs.config import check_config, job_overrides, select_sole_encoder
from seglab.runs.crashes import close_crash_log, open_crash_log, process_identity
from seglab.runs.header import (
    header_lines,
    print_header,
    run_header,
    run_overrides,
    running_header,
)
from seglab.runs.results import (
    read_metrics,
    read_status,
    stage_metrics,
    versions,
    write_metrics_json,
)
from seglab.runs.resume import LAST_CHECKPOINT, resume_folder, resumed_config
from seglab.runs.summary import print_run_summary
from seglab.runs.wandb_setup import check_wandb_online, refuse_api_key


def skip_completed(cfg: DictConfig) -> bool:
    """`sweep.skip_completed`: a sweep rerun skips completed jobs and reruns the others."""
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


def save_run_config(cfg: DictConfig, output_dir: Path) -> None:
    """`.hydra/config.yaml` (resolved) and `.hydra/overrides.yaml` of this run."""
    folder = output_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(
        run_overrides(cfg))))


def lightning_logs_to_the_run_log() -> None:
    """Lightning keeps its messages to its own console handlers ("lightning", and
    "lightning.pytorch"/"lightning.fabric" that do not propagate) when it is imported before
    logging is set up; once Hydra has set up the run's handlers (console and <run>/train.log),
    hand them over, so each message is printed once. On a terminal the console handler is
    rich's; elsewhere it prints plain `LEVEL: message` lines."""
    root = logging.getLogger()
    if not root.handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lightning = logging.getLogger(name)
        for handler in list(lightning.handlers):
            lightning.removeHandler(handler)
        lightning.propagate = True
    for index, handler in enumerate(root.handlers):
        stream = getattr(handler, "stream", None)
        if type(handler) is logging.StreamHandler and stream is not None and stream.isatty():
            from rich.logging import RichHandler
            rich = RichHandler(show_time=False, show_path=False, markup=False)
            rich.setLevel(handler.level)
            root.handlers[index] = rich


@dataclass
class Run:
    """A started run: the config it runs with (for a resumed run, its own saved config), its
    folder, and for a resumed run the checkpoint it continues from, as its checks read it
    (handed to the trainer, which takes it out: nothing keeps it once training restored it)."""

    cfg: DictConfig
    folder: Path
    resume_from: Path | None = None
    already_read: dict[Path, dict] = field(default_factory=dict)


def start_run(cfg: DictConfig) -> Run:
    """Start the run folder, or take up a resumed run's: check the folder, save the config,
    mark the run as running (naming its process), send fatal signals' reports to crash.log,
    check the config, seed everything. A resumed run (`resume=<run folder>`) runs with its
    saved config and keeps its header; the other processes of a DDP run write only their
    crash.rank<N>.log, when they crash."""
    resumed = resume_folder(cfg)
    already_read = {}
    if resumed is not None:
        cfg, last = resumed_config(cfg, resumed)
        already_read = {(resumed / LAST_CHECKPOINT).resolve(): last}
    output_dir = Path(cfg.paths.output_dir)
    refuse_api_key(cfg)  # before anything is saved: no API key in the run folder
    if resumed is None:  # a resumed run's saved config has its encoder already
        select_sole_encoder(cfg, job_overrides())
    if is_rank_zero() and resumed is not None:
        header = read_metrics(output_dir / "metrics.json") or running_header(cfg, output_dir)
        header.pop("error", None)
        write_metrics_json(output_dir / "metrics.json",
                           {**header, "status": "running", **process_identity()})
    elif is_rank_zero():
        guard_run_folder(output_dir, rerun_unfinished=skip_completed(cfg))
        save_run_config(cfg, output_dir)  # saved first: a run refused by the checks keeps it
        write_metrics_json(output_dir / "metrics.json", running_header(cfg, output_dir))
    open_crash_log(output_dir, log_suffix())  # a fatal signal's report, from now on
    check_config(cfg)
    if is_rank_zero():  # before Lightning's first line
        print_header(header_lines(cfg, output_dir, cfg.task_name))
    check_wandb_online(cfg)
    lightning_logs_to_the_run_log()
    seed_everything(cfg.seed, workers=True)
    resume_from = None if resumed is None else resumed / LAST_CHECKPOINT
    return Run(cfg, output_dir, resume_from, already_read)


def check_free_space(output_dir: Path, checkpoint_bytes: int) -> None:
    """Before training: room for the checkpoints (best, last, and last's temporary copy while
    it is replaced), or one line now instead of a failed save hours later."""
    needed = 3 * checkpoint_bytes + 50 * 2**20
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise ConfigError(f"paths.output_dir: {output_dir} has {free / 2**20:.0f} MB free; this "
                          f"run's checkpoints need about {needed / 2**20:.0f} MB: free some "
                          "space or choose another folder with hydra.run.dir=<folder>")


def finish_run(run: Run, metrics: dict) -> None:
    """Write the completed metrics.json and print the per-class table with the run folder."""
    write_metrics_json(run.folder / "metrics.json", metrics)
    close_crash_log()
    print_run_summary(metrics, metrics["class_names"], str(run.folder))


def completed_record(cfg, output_dir: Path, class_names: list[str], logged: dict[str, dict],
                     figures: dict) -> dict:
    """A completed run's metrics.json: what ran (`run_header`), the command's own `figures`,
    each stage's scores from Lightning's `logged` values ({"val": ..., "test": ...}), the run
    folder and the versions."""
    scores = {key: value for stage, values in logged.items()
              for key, value in stage_metrics(values, stage, class_names).items()}
    return {**run_header(cfg, class_names), **figures, **scores, "run_dir": str(output_dir),
            "versions": versions()}
