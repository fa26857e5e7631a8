"""What every entry point does around its work: the run-folder guard, the saved config,
and turning a user's mistake into one clear line and a failed metrics.json."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import seed_everything
from omegaconf import DictConfig, OmegaConf

from seglab.config import check_config, unknown_choice
from seglab.errors import USER_ERRORS, ConfigError, one_line
from seglab.report import print_run_summary
from seglab.results import read_status, write_metrics_json


def guard_run_folder(output_dir: Path) -> None:
    """Refuse to run into a folder that already holds a finished run's results."""
    if (output_dir / "checkpoints" / "best.ckpt").exists() or \
            read_status(output_dir / "metrics.json") == "completed":
        raise ConfigError(f"run folder {output_dir} already holds a finished run; "
                          "choose a new hydra.run.dir (nothing was changed)")


def save_run_config(cfg: DictConfig, output_dir: Path) -> None:
    """`.hydra/config.yaml` (resolved) and `.hydra/overrides.yaml` of this run."""
    folder = output_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))


def start_run(cfg: DictConfig) -> Path:
    """Check the folder and the config, save the config, seed everything: the run folder."""
    output_dir = Path(cfg.paths.output_dir)
    guard_run_folder(output_dir)
    check_config(cfg)
    save_run_config(cfg, output_dir)
    seed_everything(cfg.seed, workers=True)
    return output_dir


def finish_run(metrics: dict, output_dir: Path) -> None:
    """Write metrics.json and print the per-class table with the run folder."""
    write_metrics_json(output_dir / "metrics.json", metrics)
    print_run_summary(metrics, metrics["class_names"], str(output_dir))


def exit_on_unknown_choice() -> None:
    """Before Hydra starts: a mistyped config choice on the command line is one line, exit 2."""
    problem = unknown_choice(sys.argv[1:])
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_task(task: Callable[[DictConfig], tuple[dict, dict]], cfg: DictConfig) -> float | None:
    """Run `task(cfg)` and return the metric named by `optimized_metric`, if any.

    A user error (bad config value, missing file, bad checkpoint) prints one line and exits 1,
    or, inside a multirun, marks this run failed and lets the sweep go on. Any error leaves a
    `metrics.json` with status "failed" unless the folder already held a completed one.
    Set HYDRA_FULL_ERROR=1 for the full traceback.
    """
    output_dir = Path(cfg.paths.output_dir)
    try:
        metrics, _ = task(cfg)
    except Exception as error:
        message = one_line(error)
        write_metrics_json(output_dir / "metrics.json", {"status": "failed", "error": message})
        if not isinstance(error, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        if _in_multirun():
            return None
        raise SystemExit(1) from None
    metric_name = cfg.get("optimized_metric")
    return metrics.get(metric_name) if metric_name else None
