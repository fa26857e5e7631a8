"""What a run is, said once for the console and for metrics.json: model, encoder, data, input
size, precision, the recipe it includes (see conf/recipe/) and every model setting that
differs from the chosen model's own config file; its overrides and its process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seglab.runs.config import config_dir, job_overrides
from seglab.runs.crashes import process_identity

# model keys that are not architecture: where weights come from, follow the other choices
NOT_SETTINGS = ("_target_", "name", "encoder", "encoder_weights", "num_classes")


def model_changes(cfg: DictConfig) -> dict:
    """The model settings of `cfg` whose values differ from conf/model/<model>.yaml's (set by a
    recipe, an experiment or the command line), resolved; {} for a model without a file."""
    own_file = Path(config_dir()) / "model" / f"{cfg.model.name}.yaml"
    if not own_file.is_file():
        return {}
    own = OmegaConf.to_container(OmegaConf.load(own_file), resolve=False)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {key: value for key, value in model.items()
            if key in own and key not in NOT_SETTINGS
            and not (isinstance(own[key], str) and "${" in own[key]) and own[key] != value}


def recipe_name(cfg: DictConfig) -> str | None:
    """The recipe (conf/recipe/<name>.yaml) this run's config includes, if any."""
    return OmegaConf.select(cfg, "recipe.name", default=None)


def run_overrides(cfg: DictConfig) -> list[str]:
    """This run's overrides: the command line's, or for a reproduction the source run's
    followed by its own."""
    reproduced = OmegaConf.select(cfg, "reproduces.overrides", default=None)
    return job_overrides() if reproduced is None else list(reproduced)


def what_ran(cfg: DictConfig) -> dict:
    """The metrics.json keys that say what a run is: model, encoder, data, seed, the recipe it
    included and the model settings that differ from the model's own config."""
    return {"model": OmegaConf.select(cfg, "model.name"),
            "encoder": OmegaConf.select(cfg, "encoder.name"),
            "data": OmegaConf.select(cfg, "data.name"), "seed": OmegaConf.select(cfg, "seed"),
            "recipe": recipe_name(cfg), "model_changes": model_changes(cfg)}


def running_header(cfg: DictConfig, output_dir: Path) -> dict:
    """What metrics.json says while the run is under way, so a killed sweep shows the jobs
    that never finished."""
    return {"status": "running", **what_ran(cfg), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "overrides": run_overrides(cfg), "run_dir": str(output_dir), **process_identity()}


def run_header(cfg: DictConfig, class_names: list[str]) -> dict:
    """The keys every completed run's metrics.json starts with."""
    return {"status": "completed", **what_ran(cfg), "num_classes": len(class_names),
            "class_names": list(class_names)}


def header_lines(cfg: DictConfig, output_dir: Path, task: str) -> list[str]:
    """The run header: what runs, where it writes, the recipe it includes and every other
    model setting that differs from the model's own config."""
    size = OmegaConf.select(cfg, "data.input_size")
    lines = [f"{task}: model={cfg.model.name} encoder={cfg.encoder.name} data={cfg.data.name}"
             + (f" input={size[0]}×{size[1]}" if _pair(size) else "")
             + f" precision={OmegaConf.select(cfg, 'trainer.precision')}",
             f"writing to {output_dir}"]
    recipe = recipe_name(cfg)
    sets = list(OmegaConf.select(cfg, "recipe.sets", default=None) or [])
    if recipe is not None:
        lines.append(f"recipe={recipe} sets {' '.join(_in_force(cfg, sets))} "
                     f"(conf/recipe/{recipe}.yaml; '~recipe' drops it)")
    others = {key: value for key, value in model_changes(cfg).items()
              if not any(item.startswith(f"model.{key}=") for item in sets)}
    if others:
        lines.append(f"model settings other than conf/model/{cfg.model.name}.yaml's: "
                     + " ".join(f"model.{key}={_plain(value)}" for key, value in others.items()))
    return lines


def _pair(size) -> bool:
    return (OmegaConf.is_list(size) or isinstance(size, list)) and len(size) == 2


def _in_force(cfg: DictConfig, sets: list[str]) -> list[str]:
    """The recipe's `key=value` settings, each marked where the command line changed it."""
    marked = []
    for item in sets:
        key, _, value = item.partition("=")
        now = _plain(OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(cfg, key)}),
                                            resolve=True)["v"])
        marked.append(item if now == value else f"{item} (overridden: {now})")
    return marked


def _plain(value) -> str:
    """A value as it is written on the command line: true, [64,32,16], 3."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace(" ", "") if isinstance(value, list) else str(value)


def print_header(lines: list[str]) -> None:
    """On a terminal, the header under a rich rule; elsewhere plain lines to grep."""
    if not sys.stdout.isatty():
        for line in lines:
            print(line, flush=True)
        return
    from rich.console import Console
    console = Console()
    console.rule(f"[bold]{lines[0]}")
    for line in lines[1:]:
        console.print(line, highlight=False, soft_wrap=False)
