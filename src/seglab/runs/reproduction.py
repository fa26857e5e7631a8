"""Rerun a finished run from its saved, resolved `.hydra/config.yaml` into a new folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.core.errors import ConfigError
from seglab.runs.config import read_saved_config
from seglab.runs.results import read_metrics, versions

COMPARED = ("torch", "torchvision", "lightning", "smp", "seglab")


def load_source_config(run_dir: Path) -> DictConfig:
    """The saved config of a seglab run folder; a folder that is not one is a ConfigError."""
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a seglab run folder: {config_file} is missing "
                          "(pass a folder written by seglab-train, e.g. outputs/train/runs/<time>)")
    cfg = read_saved_config(config_file, "seglab-reproduce")
    if "model" not in cfg or "data" not in cfg:
        raise ConfigError(f"{config_file} is not a seglab-train config (no model or data)")
    return cfg


def rebase_paths(node, old: str, new: str):
    """`node` with every string under the folder `old` moved under `new` (the resolved config
    names the source run's folder in its checkpoint, log and history paths)."""
    if isinstance(node, dict):
        return {key: rebase_paths(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [rebase_paths(value, old, new) for value in node]
    if isinstance(node, str) and (node == old or node.startswith(old.rstrip("/") + "/")):
        return new + node[len(old):]
    return node


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """`key=value` overrides of single values of the saved config (groups cannot be swapped
    in a resolved config)."""
    for override in overrides:
        key, sign, value = override.partition("=")
        if not sign or not key:
            raise ConfigError(f"override {override!r}: expected key=value")
        current = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(current, str) and current == "<absent>":
            raise ConfigError(f"override {override!r}: the run's config has no key {key!r}")
        if OmegaConf.is_dict(current):
            raise ConfigError(f"override {override!r}: {key} is a whole config group; a saved "
                              "run can only change single values (e.g. trainer.max_epochs=3); "
                              "train anew with seglab-train to swap a group")
        OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, merge=False)


def version_differences(source: dict, current: dict) -> list[str]:
    """`name: source → installed` for each library version and the seglab git commit that
    differ between the source run and this installation."""
    changes = [f"{name} {source.get(name)} → {current.get(name)}" for name in COMPARED
               if source.get(name) != current.get(name)]
    old, new = source.get("git") or {}, current.get("git") or {}
    if (old.get("commit"), old.get("dirty")) != (new.get("commit"), new.get("dirty")):
        def describe(state: dict) -> str:
            commit = (state.get("commit") or "unknown")[:10]
            return f"{commit}{' (dirty)' if state.get('dirty') else ''}"
        changes.append(f"seglab commit {describe(old)} → {describe(new)}")
    return changes


def prepare_reproduction(run_dir: Path, output_dir: Path,
                         overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """The source run's config writing into `output_dir`, with `overrides` applied and the
    source recorded under `reproduces`; and the version differences to report."""
    run_dir = run_dir.resolve()
    cfg = load_source_config(run_dir)
    old_dir = str(OmegaConf.select(cfg, "paths.output_dir", default=run_dir))
    container = rebase_paths(OmegaConf.to_container(cfg), old_dir, str(output_dir))
    container = rebase_paths(container, str(run_dir), str(output_dir))
    cfg = OmegaConf.create(container)
    apply_overrides(cfg, overrides)
    source_versions = (read_metrics(run_dir / "metrics.json") or {}).get("versions") or {}
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    source_overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.task_name = "reproduce"
        cfg.reproduces = {"run": str(run_dir), "versions": source_versions,
                          "overrides": [*source_overrides, *overrides]}
    return cfg, version_differences(source_versions, versions())


def reproduction_record(cfg: DictConfig) -> dict:
    """For metrics.json of a run made by seglab-reproduce: `reproduces` (the source run folder)
    and `source_versions`; nothing for any other run."""
    source = cfg.get("reproduces")
    if not source:
        return {}
    return {"reproduces": source.run,
            "source_versions": OmegaConf.to_container(source.versions, resolve=True)}
