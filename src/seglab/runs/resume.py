"""`seglab-train resume=<run folder>`: continue a killed or failed run from its last.ckpt, with
the run's own config, folder and logger run. `resume_argument` runs before Hydra starts, so
the checkpoint reader (torch) is imported by the checks that read one."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.core.errors import FolderRefused
from seglab.runs.config import job_overrides, read_saved_config
from seglab.runs.crashes import live_process
from seglab.runs.results import read_metrics

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def resume_folder(cfg: DictConfig) -> Path | None:
    """The run folder named by `resume=`, or None for a new run."""
    folder = OmegaConf.select(cfg, "resume", default=None)
    return None if folder is None else Path(str(folder)).resolve()


def resumed_config(cfg: DictConfig, run_dir: Path) -> tuple[DictConfig, dict]:
    """The config the run in `run_dir` was started with, after checking it can continue:
    a seglab run folder, not completed, with a last.ckpt, resumed where it was written and
    without other overrides (the run's config is what it trains with); and its last.ckpt,
    read once here."""
    from seglab.core.checkpoints import read_checkpoint, trusted
    from seglab.core.distributed import is_rank_zero

    config_file = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        raise FolderRefused(f"resume: {run_dir} is not a folder; expected a seglab-train run "
                          "folder (outputs/train/runs/<date>_<time>)")
    if not config_file.is_file():
        raise FolderRefused(f"resume: {run_dir} is not a seglab-train run folder: "
                          f"{config_file} is missing")
    record = read_metrics(run_dir / "metrics.json") or {}
    if record.get("status") == "completed":
        raise FolderRefused(f"resume: the run in {run_dir} already completed; nothing to continue "
                          "(start a new run, or seglab-reproduce it)")
    # the other processes of a resumed DDP run start while rank zero runs it
    alive = live_process(record) if record.get("status") == "running" and is_rank_zero() \
        else None
    if alive is not None:
        raise FolderRefused(f"resume: the run in {run_dir} is still running ({alive}); wait for "
                          "it, or stop it first")
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise FolderRefused(f"resume: {run_dir / LAST_CHECKPOINT} is missing: the run stopped "
                          "before its first checkpoint; start it again instead")
    last = read_checkpoint(run_dir / LAST_CHECKPOINT, trusted(cfg), key="resume", mmap=False)
    others = [item for item in job_overrides() if item.split("=", 1)[0] != "resume"]
    if others:
        raise FolderRefused(f"resume: continues the run with its own config; remove the other "
                          f"overrides {' '.join(others)} (or start a new run with them)")
    run_cfg = read_saved_config(config_file, "resume")
    written_to = Path(str(OmegaConf.select(run_cfg, "paths.output_dir"))).resolve()
    if written_to != run_dir:
        raise FolderRefused(f"resume: the run was written to {written_to} and its config and "
                          f"checkpoints name that folder; resume it there, not from {run_dir}")
    with open_dict(run_cfg):
        run_cfg.resume = str(run_dir)
        run_cfg.trust_checkpoint = trusted(cfg)
        wandb_run = _wandb_run_id(run_dir)
        if OmegaConf.select(run_cfg, "logger.wandb") is not None and wandb_run is not None:
            run_cfg.logger.wandb.id = wandb_run  # the same wandb run goes on
            run_cfg.logger.wandb.resume = "allow"
    return run_cfg, last


def _wandb_run_id(run_dir: Path) -> str | None:
    """The id of the run's wandb run: wandb/latest-run links to `[offline-]run-<time>-<id>`."""
    latest = run_dir / "wandb" / "latest-run"
    return latest.resolve().name.rsplit("-", 1)[-1] if latest.exists() else None


def resume_argument(arguments: list[str]) -> list[str]:
    """Before Hydra starts: `resume=<folder>` also sends Hydra's own log of this session into
    that folder (`hydra.run.dir`), instead of a new, empty run folder."""
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key == "resume" and Path(value).is_dir():
            return [f'hydra.run.dir="{Path(value).resolve()}"']
    return []
