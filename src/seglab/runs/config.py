"""Where the Hydra configs live, the resolvers they use, and the checks a composed config must
pass before a run.

Imported by every entry point before Hydra starts, so it imports no torch: a typo on the
command line, `--help` and `--cfg` answer without it. What needs torch (`${auto_precision:}`,
the model registry, `${log_suffix:}`'s ranks) is imported when first used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.core.errors import ConfigError
from seglab.runs import (
    precision,  # noqa: F401 (registers ${auto_precision:}, ${amp_precision:})
    wandb_setup,  # noqa: F401 (registers ${wandb_offline:}, ${wandb_log_model:})
)


def config_dir() -> str:
    """The `conf/` folder: packaged inside seglab by `pip install .`, else the source tree's."""
    here = Path(__file__).resolve().parents[1]  # the seglab package
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise ConfigError(f"seglab's config folder is missing: looked for conf/train.yaml in "
                      f"{here} and {here.parents[1]}; reinstall seglab")


def compose_config(name: str, output_dir: Path,
                   overrides: Sequence[str] = ()) -> DictConfig:
    """The config `name` (train, predict...) with `overrides`, composed in-process as the
    console script would receive it, writing to `output_dir`; Hydra's runtime is registered
    so `${hydra:...}` values resolve. For tests and benchmarks."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def search_roots(arguments: list[str]) -> list[Path] | None:
    """seglab's config folder and the folders `hydra.searchpath=[file://...]` adds; None when
    it adds a `pkg://` or other source these checks cannot list (Hydra then checks alone)."""
    roots = [Path(config_dir())]
    for argument in arguments:
        key, _, value = argument.lstrip("+").partition("=")
        if key != "hydra.searchpath":
            continue
        for entry in filter(None, (item.strip(" '\"") for item in value.strip("[]").split(","))):
            if not entry.startswith("file://"):
                return None
            roots.append(Path(entry.removeprefix("file://")))
    return roots


def unknown_choice(arguments: list[str]) -> str | None:
    """The first `group=choice` argument whose choice has no config file, described in one
    line with the valid choices; None when every choice exists. Sweep lists and lists of
    configs (`logger=[csv,tensorboard]`) are checked item by item; sweep functions
    (`choice(...)`, `range(...)`) are left to Hydra, and so are groups of a searchpath entry
    that is not a folder."""
    roots = search_roots(arguments)
    for argument in arguments if roots else ():
        key, _, value = argument.lstrip("+").partition("=")
        groups = [root / key for root in roots if (root / key).is_dir()]
        if not value or "(" in value or key.startswith(("hydra", "~")) or not groups:
            continue
        if key == "recipe" and value == "null":  # Hydra takes null only for a plain default
            return ("recipe=null: the recipe follows from model, encoder and data "
                    "(conf/recipe/<model>_<encoder>_<data>.yaml); drop it with '~recipe'")
        valid = sorted({path.stem for group in groups for path in group.glob("*.yaml")})
        for choice in value.strip("[]").split(","):  # a choice, a sweep list or a [list]
            if choice not in valid and choice != "null":
                return (f"unknown {key} {choice!r} in '{argument}'; "
                        f"valid choices for {key}: {', '.join(valid)}")
    return None


def job_overrides() -> list[str]:
    """The command-line overrides of this run (of this job, in a sweep)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def sweep_group(default: str) -> str:
    """The sweep folder of a job in a multirun, else `default`: `${sweep_group:...}` groups a
    sweep's runs in wandb, while `${job_tags:}` tags each with its swept values."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return default


def log_suffix() -> str:
    """`${log_suffix:}` (conf/hydra/default.yaml): Hydra resolves it when it sets up a job's
    log, before the job imports anything; the ranks are seglab.core.distributed's."""
    from seglab.core import distributed

    return distributed.log_suffix()


OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("job_tags", job_overrides, replace=True)
OmegaConf.register_new_resolver("log_suffix", log_suffix, replace=True)


def select_sole_encoder(cfg: DictConfig, overrides: list[str]) -> None:
    """A model that accepts a single encoder (unet_classic, fcn8s, lraspp) selects it by
    itself, unless the command line names an encoder (which is then checked as usual)."""
    from seglab.models import MODELS

    model, encoder = OmegaConf.select(cfg, "model.name"), OmegaConf.select(cfg, "encoder.name")
    if model not in MODELS or encoder is None:
        return
    encoders = MODELS[model].only
    named = any(item.lstrip("+~").split("=", 1)[0] == "encoder" for item in overrides)
    if len(encoders) != 1 or encoder == encoders[0] or named:
        return
    with open_dict(cfg):
        cfg.encoder = OmegaConf.load(Path(config_dir()) / "encoder" / f"{encoders[0]}.yaml")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_fraction(value) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _are_numbers(value, count: int | None = None) -> bool:
    return isinstance(value, list) and all(map(_is_number, value)) and \
        (count is None or len(value) == count)


def _is_scale_range(value) -> bool:
    return value is None or (_are_numbers(value, 2) and 0 < value[0] <= value[1])


def _is_size(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(
        _is_int(side) and side >= 1 for side in value)


# key -> (test, what was expected); checked only where the key is present in the config.
WORKER_COUNT = (lambda v: v == "auto" or (_is_int(v) and v >= 0), "auto or a non-negative integer")
TYPED_KEYS = {
    "seed": (_is_int, "an integer"),
    "trust_checkpoint": (lambda v: isinstance(v, bool), "true or false"),
    "data.num_classes": (lambda v: _is_int(v) and v >= 2, "an integer of at least 2"),
    "data.class_names": (lambda v: v is None or (isinstance(v, list) and all(
        isinstance(name, str) for name in v)), "null (the dataset's own) or a list of names"),
    "data.batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "data.num_workers": WORKER_COUNT,
    "data.ignore_index": (_is_int, "an integer"),
    "data.input_size": (_is_size, "a [height, width] pair of positive integers"),
    "data.eval_mode": (lambda v: v in ("whole", "slide"), "whole or slide"),
    "data.eval_tile": (lambda v: v is None or _is_size(v),
                       "null (data.input_size) or a [height, width] pair of positive integers"),
    "data.eval_stride": (lambda v: v is None or _is_size(v), "null (two thirds of the tile) "
                         "or a [height, width] pair of positive integers"),
    "data.mean": (lambda v: _are_numbers(v, 3), "3 numbers, one per RGB channel"),
    "data.std": (lambda v: _are_numbers(v, 3) and min(v) > 0,
                 "3 positive numbers, one per RGB channel"),
    "data.hflip": (_is_fraction, "a probability in [0, 1]"),
    "data.vflip": (_is_fraction, "a probability in [0, 1]"),
    "data.color_jitter": (_is_fraction, "a strength in [0, 1]"),
    "data.scale": (_is_scale_range, "null or a [low, high] range of positive factors, low <= high"),
    "data.on_error": (lambda v: v in ("raise", "skip"), "raise or skip"),
    **{key: (lambda v: isinstance(v, bool), "true or false")
       for key in ("data.normalize_on_device", "model.channels_last", "model.compile")},
    "model.encoder_depth": (lambda v: _is_int(v) and 1 <= v <= 5, "an integer from 1 to 5"),
    "trainer.max_epochs": (lambda v: v is None or v == -1 or (_is_int(v) and v >= 1),
                           "a positive integer, -1 (no limit) or null"),
    "trainer.max_steps": (lambda v: v == -1 or (_is_int(v) and v >= 1),
                          "a positive number of training steps, or -1 (no limit)"),
    "trainer.check_val_every_n_epoch": (lambda v: v is None or (_is_int(v) and v >= 1),
                                        "a positive integer, or null (validate every "
                                        "trainer.val_check_interval steps)"),
    "trainer.val_check_interval": (lambda v: v is None or isinstance(v, str | dict) or (
        _is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1), "null, a positive "
        "number of training batches, a fraction of an epoch in (0, 1] or a time (DD:HH:MM:SS)"),
    "optimizer.lr": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "optimizer.weight_decay": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "optimizer.momentum": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.encoder_lr_mult": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "loss.gamma": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "loss.weights": (lambda v: isinstance(v, dict) and all(
        _is_number(weight) and weight >= 0 for weight in v.values()),
        "a non-negative number per loss term, such as {ce: 1.0, dice: 1.0}"),
    "scheduler.factory.power": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "scheduler.factory.eta_min": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "scheduler.factory.factor": (lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "scheduler.factory.patience": (lambda v: _is_int(v) and v >= 0,
                                   "a non-negative number of epochs"),
    "predict.batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "predict.num_workers": WORKER_COUNT,
    "predict.alpha": (_is_fraction, "an opacity in [0, 1]"),
    "predict.overlap": (lambda v: _is_number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    "predict.max_pixels": (lambda v: _is_int(v) and v >= 1, "a positive number of pixels"),
    **{f"predict.{switch}": (lambda v: isinstance(v, bool), "true or false")
       for switch in ("tta", "flip", "side_by_side", "save_as_dataset", "video_frames",
                      "overlays")},
}


def _check_types(cfg: DictConfig) -> None:
    for key, (test, expected) in TYPED_KEYS.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if isinstance(value, str) and value == "<absent>":
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not test(value):
            raise ConfigError(f"config key {key} = {value!r} ({type(value).__name__}): "
                              f"expected {expected}")


def _class_weight_keys(node, prefix: str = "loss") -> list[str]:
    """The keys of every `class_weights` in the loss config (ce_dice has one per term)."""
    if not OmegaConf.is_dict(node):
        return []
    found = []
    for key in node:
        path = f"{prefix}.{key}"
        found += [path] if key == "class_weights" else _class_weight_keys(node[key], path)
    return found


def _check_classes(cfg: DictConfig) -> None:
    """Class names and class weights, one per class of data.num_classes."""
    classes = OmegaConf.select(cfg, "data.num_classes")
    names = OmegaConf.select(cfg, "data.class_names")
    if names is not None and len(names) != classes:
        raise ConfigError(f"config key data.class_names = {list(names)}: expected "
                          f"{classes} names, one per class (data.num_classes={classes})")
    for key in _class_weight_keys(OmegaConf.select(cfg, "loss")):
        weights = OmegaConf.select(cfg, key)
        if weights is None or weights == "auto":
            continue
        values = OmegaConf.to_container(weights) if OmegaConf.is_list(weights) else weights
        if not (_are_numbers(values, classes) and min(values) >= 0):
            raise ConfigError(f"config key {key} = {weights}: expected auto or a list of "
                              f"{classes} numbers (non-negative, one per class of "
                              "data.num_classes), or null")


def _check_run_length(cfg: DictConfig) -> None:
    """A schedule over the whole run needs a finite one, in epochs or in steps."""
    horizon = OmegaConf.select(cfg, "scheduler.horizon_arg")
    no_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1) == -1
    if OmegaConf.select(cfg, "trainer.max_epochs") == -1 and no_steps and horizon is not None:
        raise ConfigError("config key trainer.max_epochs = -1 (no limit): the scheduler sets "
                          f"its {horizon} from the run's length and trainer.max_steps = -1 sets "
                          "none either; expected a positive number of epochs or "
                          "trainer.max_steps=N, or scheduler=none or scheduler=plateau")


def _check_validation_interval(cfg: DictConfig) -> None:
    """Validation counted over the run's steps (`check_val_every_n_epoch: null`) needs a
    number of steps to count."""
    if OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=1) is not None:
        return
    interval = OmegaConf.select(cfg, "trainer.val_check_interval")
    if not (_is_int(interval) and interval >= 1):
        raise ConfigError(f"config key trainer.val_check_interval = {interval!r}: with "
                          "trainer.check_val_every_n_epoch=null validation is counted in "
                          "training steps; expected a positive integer, such as "
                          "trainer.val_check_interval=1000")


def _check_eval_window(cfg: DictConfig) -> None:
    """Sliding tiles that leave no pixel between them: a stride at most the tile."""
    stride = OmegaConf.select(cfg, "data.eval_stride")
    tile = OmegaConf.select(cfg, "data.eval_tile") or OmegaConf.select(cfg, "data.input_size")
    if stride is not None and any(step > side for step, side in zip(stride, tile, strict=True)):
        raise ConfigError(f"config key data.eval_stride = {list(stride)}: expected at most the "
                          f"tile {list(tile)} (data.eval_tile; null: data.input_size) on each "
                          "side, or pixels between tiles would go unpredicted")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value has the wrong type or range, class
    names or weights that do not match the number of classes, or a model/encoder pair the
    registry refuses."""
    from seglab.models import check_pair

    _check_types(cfg)
    _check_classes(cfg)
    _check_run_length(cfg)
    _check_validation_interval(cfg)
    _check_eval_window(cfg)
    model = OmegaConf.select(cfg, "model.name")
    encoder = OmegaConf.select(cfg, "model.encoder")
    if model is not None and encoder is not None:
        try:
            check_pair(model, encoder)
        except ValueError as error:
            raise ConfigError(str(error)) from None


# The `_target_`s of seglab's own classes that moved when src/seglab was grouped by stage: a
# run folder saved before names their old module, and is read with the new one.
MOVED_TARGET = re.compile(r"(_target_: *)seglab\.(losses|schedule|callbacks)\.")


def read_saved_config(config_file: Path, key: str) -> DictConfig:
    """A run folder's saved, resolved `.hydra/config.yaml` (with moved `_target_`s followed);
    a file that is not readable YAML is a ConfigError naming `key` and the file."""
    try:
        text = config_file.read_text()
        cfg = OmegaConf.create(MOVED_TARGET.sub(r"\1seglab.engine.\2.", text))
    except (OSError, yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{key}: the run's config {config_file} is not readable YAML "
                          f"({type(error).__name__}); restore it from the run") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{key}: the run's config {config_file} is not a mapping of settings; "
                          "restore it from the run")
    return cfg
