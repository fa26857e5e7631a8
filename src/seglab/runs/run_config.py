"""A trained run's saved config, reloaded by the commands that start from its checkpoint
(eval, predict, export), with their own output sections and command-line overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from seglab.core.checkpoints import read_checkpoint, trusted
from seglab.core.errors import ConfigError
from seglab.runs.config import job_overrides, read_saved_config

# What fixes the network a checkpoint holds: a command line that changes one contradicts it.
NETWORK_KEYS = ("model", "encoder.name", "data.num_classes")
# Where a network's starting weights come from, and how fast it runs (models/speed.py):
# irrelevant to which network a checkpoint holds.
STARTING_WEIGHTS = ("weights", "encoder_weights", "freeze_encoder", "channels_last", "compile")


@dataclass(frozen=True)
class TrainedCheckpoint:
    """A seglab-train checkpoint as the command read it, once: its path, its contents and the
    class names it records (its config is its run's saved config)."""

    path: Path
    contents: dict
    class_names: list[str]

    @classmethod
    def read(cls, ckpt_path: Path, trust: bool = False) -> TrainedCheckpoint:
        """Read `ckpt_path` (tensors only unless `trust`); a ConfigError for a file that was
        not written by seglab-train."""
        contents = read_checkpoint(ckpt_path, trust)
        return cls(ckpt_path, contents, recorded_class_names(contents, ckpt_path))


def recorded_class_names(checkpoint: object, ckpt_path: Path) -> list[str]:
    """The class names a seglab-train checkpoint records; a ConfigError for any other file."""
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint \
            or not isinstance(checkpoint.get("seglab"), dict) \
            or "class_names" not in checkpoint["seglab"]:
        raise ConfigError(f"ckpt_path: {ckpt_path} was not written by seglab-train "
                          "(it has no 'seglab' entry); pass <run>/checkpoints/best.ckpt")
    return list(checkpoint["seglab"]["class_names"])


def load_run_config(checkpoint: TrainedCheckpoint) -> DictConfig:
    """The saved config of the run that wrote `checkpoint`, after checking that its classes
    are the config's."""
    ckpt_path, class_names = checkpoint.path, checkpoint.class_names
    config_file = ckpt_path.parent.parent / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"ckpt_path: {ckpt_path} is not in a seglab run folder: "
                          f"{config_file} is missing")
    run_cfg = read_saved_config(config_file, "ckpt_path")
    classes = OmegaConf.select(run_cfg, "data.num_classes")
    if classes != len(class_names):
        raise ConfigError(f"ckpt_path: {ckpt_path} holds {len(class_names)} classes but its "
                          f"run's config {config_file} says data.num_classes={classes}; the "
                          "checkpoint belongs to another run")
    return run_cfg


def merge_run_config(run_cfg: DictConfig, entry_cfg: DictConfig, overrides: Sequence[str],
                     owned: Sequence[str]) -> DictConfig:
    """The run's config, with the entry point's `owned` sections (where it writes, what it
    reads) and its command-line overrides. The checkpoint supplies the weights, so no
    pretrained weights are fetched or loaded; whether to trust the checkpoint is this
    command's choice, never the run's."""
    merged = OmegaConf.merge(run_cfg, {key: entry_cfg[key] for key in owned if key in entry_cfg})
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in owned or key.startswith("hydra"):
            continue
        OmegaConf.update(merged, key, OmegaConf.select(entry_cfg, key), merge=False)
    merged.trust_checkpoint = trusted(entry_cfg)
    merged.trainer.default_root_dir = entry_cfg.paths.output_dir
    merged.model.weights = None
    merged.model.encoder_weights = None
    return merged


def network_of(cfg: DictConfig) -> dict:
    """The values of NETWORK_KEYS in `cfg`, resolved; the model without its starting weights."""
    values = {key: OmegaConf.select(cfg, key) for key in NETWORK_KEYS}
    model = OmegaConf.to_container(cfg.model, resolve=True)
    values["model"] = {key: value for key, value in model.items() if key not in STARTING_WEIGHTS}
    return values


def _touches(override: str, key: str) -> bool:
    name = override.split("=", 1)[0].lstrip("+~")
    return name == key or name.startswith(f"{key}.") or key.startswith(f"{name}.")


def refuse_network_changes(run_cfg: DictConfig, merged: DictConfig, overrides: Sequence[str],
                           ckpt_path: Path) -> None:
    """A ConfigError naming the first override that changes the network or the classes the
    checkpoint was trained with (another model, encoder or number of classes)."""
    trained, asked = network_of(run_cfg), network_of(merged)
    changed = [key for key in NETWORK_KEYS if trained[key] != asked[key]]
    if not changed:
        return
    culprit = next((override for override in overrides if _touches(override, changed[0])),
                   changed[0])
    model, encoder, classes = (OmegaConf.select(run_cfg, key)
                               for key in ("model.name", "encoder.name", "data.num_classes"))
    raise ConfigError(f"{culprit}: contradicts ckpt_path={ckpt_path}, trained as model={model} "
                      f"encoder={encoder} data.num_classes={classes}; a checkpoint fixes its "
                      "network and classes, so drop the override or pass a checkpoint trained "
                      "that way")


def checkpoint_run_config(ckpt_path: Path, entry_cfg: DictConfig,
                          owned: Sequence[str]) -> tuple[DictConfig, TrainedCheckpoint]:
    """The config an entry point (eval, predict, export) runs `ckpt_path` with: its run's
    saved config, the entry's `owned` sections and command-line overrides, after checking that
    they keep the checkpoint's network and classes; and the checkpoint, read once."""
    checkpoint = TrainedCheckpoint.read(ckpt_path, trusted(entry_cfg))
    run_cfg = load_run_config(checkpoint)
    overrides = job_overrides()
    merged = merge_run_config(run_cfg, entry_cfg, overrides, owned)
    refuse_network_changes(run_cfg, merged, overrides, ckpt_path)
    return merged, checkpoint
