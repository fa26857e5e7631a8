"""The run's `metrics.json`: the contract that reports and checks read (see DESIGN.md)."""

from __future__ import annotations

import json
import math
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from seglab import __version__
from seglab.core.atomic import write_atomically

PACKAGES = {"torch": "torch", "torchvision": "torchvision", "lightning": "lightning",
            "smp": "segmentation-models-pytorch"}
METRIC_NAMES = ("mIoU", "mIoU_best", "pixel_acc", "dice", "loss")


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git_state() -> dict:
    """Commit and dirty flag of the seglab source tree, or nulls outside a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def versions() -> dict:
    """Library versions and the seglab git state, for reproducing a run."""
    found = {key: package_version(package) for key, package in PACKAGES.items()}
    return {**found, "seglab": __version__, "git": _git_state()}


def stage_metrics(logged: dict, stage: str, class_names: list[str]) -> dict:
    """The contract keys of one stage (`val` or `test`) from Lightning's logged values."""
    names = [*METRIC_NAMES, *(f"iou_{name}" for name in class_names)]
    return {f"{stage}/{name}": float(logged[f"{stage}/{name}"])
            for name in names if f"{stage}/{name}" in logged}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def read_metrics(path: Path) -> dict | None:
    """An existing metrics.json as a dict, or None when there is none readable."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def read_status(path: Path) -> str | None:
    """The `status` of an existing metrics.json, or None when there is none readable."""
    return (read_metrics(path) or {}).get("status")


def write_metrics_json(path: Path, summary: dict) -> None:
    """Write `summary` atomically (temp file, fsync, rename; NaN becomes null), so a kill
    mid-write leaves the previous file whole; a completed file is only ever replaced
    by another completed one, never by a failed or running one."""
    if summary.get("status") != "completed" and read_status(path) == "completed":
        return
    write_atomically(path, json.dumps(_json_safe(summary), indent=2) + "\n")

