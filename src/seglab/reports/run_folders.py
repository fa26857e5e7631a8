"""Run folders as `seglab-compare` reads them: where they are, what each says (status,
model/encoder/data, overrides, metrics.json), and their labels in the table."""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from seglab.runs.crashes import settled

IDENTITY = ("model", "encoder", "data")
STATUS_ORDER = ("completed", "pruned", "failed", "crashed", "running", "unfinished")


class CompareError(Exception):
    """A bad path, run folder or key, said in one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside a text by value: `2` before `10`."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class Run:
    """What one run folder says: status, model/encoder/data, overrides and metrics.json."""

    folder: Path
    label: str
    status: str
    identity: dict
    overrides: dict[str, str]
    metrics: dict


@dataclass
class Sources:
    """The run folders found from the command line, and where the files go by default."""

    run_dirs: list[Path]
    out_dir: Path


def is_run_dir(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or (folder / ".hydra" / "config.yaml").is_file()


def run_dirs_below(folder: Path) -> list[Path]:
    """Run folders at or below `folder`, never looking inside a run folder or a hidden one."""
    found = []
    for parent, children, _ in os.walk(folder):
        if is_run_dir(Path(parent)):
            found.append(Path(parent))
            children.clear()
        else:
            children[:] = [name for name in children if not name.startswith(".")]
    return found


def _folders(argument: str) -> tuple[list[Path], bool]:
    """The folders an argument names (a metrics.json names its folder), and whether it was
    a glob."""
    path = Path(argument).expanduser()
    is_glob = not path.exists() and re.search(r"[*?[]", argument) is not None
    if not path.exists() and not is_glob:
        raise CompareError(f"no such folder: {argument}", code=2)
    matches = sorted(glob.glob(str(path)), key=natural_key) if is_glob else [str(path)]
    folders = [Path(match).parent if Path(match).name == "metrics.json" else Path(match)
               for match in matches]
    folders = [folder.resolve() for folder in folders if folder.is_dir()]
    if not folders:
        raise CompareError(f"no folder matches {argument!r}" if is_glob
                           else f"not a folder: {argument}", code=2)
    return folders, is_glob


def find_runs(arguments: Sequence[str]) -> Sources:
    """Every run folder below the arguments (folders or globs), once each, in natural order."""
    run_dirs: dict[Path, None] = {}
    out_dir = None
    for argument in arguments:
        folders, is_glob = _folders(argument)
        found = [run_dir for folder in folders for run_dir in run_dirs_below(folder)]
        if not found:
            raise CompareError(f"no run folders (metrics.json or .hydra/config.yaml) below "
                               f"{argument}", code=2)
        run_dirs.update(dict.fromkeys(found))
        if out_dir is None:
            out_dir = Path(os.path.commonpath([folder.parent for folder in folders])) \
                if is_glob else folders[0]
    return Sources(list(run_dirs), out_dir)


def run_labels(run_dirs: Sequence[Path]) -> dict[Path, str]:
    """Each run folder's path relative to the common parent of all of them."""
    common = Path(os.path.commonpath(run_dirs))
    if common in run_dirs:
        common = common.parent
    return {run_dir: run_dir.relative_to(common).as_posix() for run_dir in run_dirs}


def load_run_metrics(path: Path) -> dict | None:
    """A run's metrics.json, None when there is none; a foreign one is an error."""
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CompareError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(metrics, dict) or "status" not in metrics:
        raise CompareError(f"{path}: not a seglab metrics.json (expected an object with a "
                           "'status' key)")
    return metrics


def read_yaml(path: Path):
    """A YAML file's contents, None when it does not exist."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CompareError(f"{path}: not readable YAML ({type(error).__name__})") from None


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The job's command-line overrides as key → value (`+`/`~` prefixes and hydra.* dropped)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    items = read_yaml(path) or []
    if not isinstance(items, list):
        raise CompareError(f"{path}: expected a YAML list of overrides like ['seed=1']")
    overrides = {}
    for item in map(str, items):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if not key.startswith("hydra."):
            overrides[key] = value
    return overrides


def read_run(run_dir: Path, label: str) -> Run:
    """One run folder; model, encoder and data come from the saved config when metrics.json
    lacks them (a failed or unfinished run). A run whose process died is "crashed"."""
    metrics = load_run_metrics(run_dir / "metrics.json")
    if metrics is not None:
        metrics = settled(run_dir, metrics)  # a dead "running" run is "crashed"
    identity = {key: (metrics or {}).get(key) for key in IDENTITY}
    if None in identity.values():
        config = read_yaml(run_dir / ".hydra" / "config.yaml")
        config = config if isinstance(config, dict) else {}
        for key in IDENTITY:
            group = config.get(key)
            if identity[key] is None and isinstance(group, dict):
                identity[key] = group.get("name")
    status = str(metrics["status"]) if metrics else "unfinished"
    return Run(run_dir, label, status, identity, read_overrides(run_dir), metrics or {})


def read_runs(sources: Sources) -> list[Run]:
    """Every found run folder, read, in natural order of its label."""
    labels = run_labels(sources.run_dirs)
    runs = [read_run(run_dir, label) for run_dir, label in labels.items()]
    return sorted(runs, key=lambda run: natural_key(run.label))


def status_summary(runs: Sequence[Run]) -> str:
    """`7 runs: 5 completed, 1 failed, 1 running`."""
    counts = Counter(run.status for run in runs)
    order = [*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER))]
    parts = ", ".join(f"{counts[status]} {status}" for status in order if counts[status])
    return f"{len(runs)} run{'s' * (len(runs) != 1)}: {parts}"
