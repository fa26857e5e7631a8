"""wandb without a key: runs log offline unless W&B credentials exist, upload checkpoints only
when online, and an API key is refused wherever it would be saved (a config or an override).

Registers `${wandb_offline:}` and `${wandb_log_model:...}` (conf/logger/wandb.yaml) at import.
Reads the environment and wandb's own files with the standard library: no wandb import.
"""

from __future__ import annotations

import configparser
import netrc
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from seglab.core.errors import ConfigError

OFFLINE_MODES = ("offline", "dryrun")  # "dryrun": what Lightning's WandbLogger(offline=True) sets
USE_LOGIN = "use the WANDB_API_KEY environment variable or `wandb login` instead"


def _settings() -> dict[str, str]:
    """wandb's settings files (`wandb login`, `wandb offline`): the global one, then the
    workspace one (./wandb/settings) over it."""
    config_dir = os.environ.get("WANDB_CONFIG_DIR") or Path("~/.config/wandb").expanduser()
    workspace = Path(os.environ.get("WANDB_DIR") or ".") / "wandb"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read([Path(config_dir) / "settings", workspace / "settings"])
    except configparser.Error:
        return {}
    return dict(parser["default"]) if parser.has_section("default") else {}


def _netrc_has_key(host_url: str) -> bool:
    """Whether ~/.netrc (or $NETRC) holds a password for the W&B host, as `wandb login` writes."""
    path = os.environ.get("NETRC") or Path("~/.netrc").expanduser()
    try:
        entry = netrc.netrc(path).authenticators(urlsplit(host_url).netloc)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def has_credentials() -> bool:
    """Whether wandb would find credentials: WANDB_API_KEY (or an identity token file), a
    ~/.netrc entry for the W&B host, or an api_key in wandb's settings."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    settings = _settings()
    host = os.environ.get("WANDB_BASE_URL") or settings.get("base_url") or "https://api.wandb.ai"
    return _netrc_has_key(host) or bool(settings.get("api_key"))


def wandb_mode() -> str:
    """The mode the user chose for wandb (WANDB_MODE, or `wandb offline`/`wandb online`);
    "" when none."""
    return (os.environ.get("WANDB_MODE") or _settings().get("mode") or "").strip().lower()


def wandb_offline() -> bool:
    """`${wandb_offline:}`: offline unless credentials exist; a chosen mode decides first
    (WANDB_MODE=offline with a key: offline; =online without one: online)."""
    mode = wandb_mode()  # disabled: wandb logs nothing, and must not be made offline
    return mode in OFFLINE_MODES if mode else not has_credentials()


def wandb_log_model(offline: bool) -> bool:
    """`${wandb_log_model:${.offline}}`: upload the best and last checkpoints as an artifact
    at the end of training, only for an online run (an offline upload has nowhere to go)."""
    return not offline and wandb_mode() not in (*OFFLINE_MODES, "disabled")


def _is_key_name(name: str) -> bool:
    return name.lower().replace("-", "_").endswith("api_key")


def api_key_override(arguments: Sequence[str]) -> str | None:
    """One line refusing the first command-line override that sets an API key (without
    repeating its value), before Hydra writes it into a sweep's multirun.yaml or logs."""
    for argument in arguments:
        key, _, value = argument.lstrip("+~").partition("=")
        if value and _is_key_name(key.rsplit(".", 1)[-1]):
            return f"refusing the override {key}: an API key would be saved with the run; " \
                   f"{USE_LOGIN}"
    return None


def _leaves(node, path: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every key and leaf of a plain config container."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for name, value in items:
        key = f"{path}.{name}" if path else str(name)
        yield key, value
        yield from _leaves(value, key)


def refuse_api_key(cfg: DictConfig) -> None:
    """Before anything of the run is saved: refuse a config that holds an API key (a key named
    api_key, or the value of WANDB_API_KEY anywhere), naming the key, never the value."""
    secret = os.environ.get("WANDB_API_KEY", "")
    task_keys = [key for key in cfg if key != "hydra"]  # Hydra's own node, present in tests
    for key, value in _leaves(OmegaConf.to_container(OmegaConf.masked_copy(cfg, task_keys),
                                                     resolve=True)):
        if _is_key_name(key.rsplit(".", 1)[-1]) or \
                (len(secret) >= 8 and isinstance(value, str) and secret in value):
            raise ConfigError(f"config key {key}: an API key does not belong in a config (it "
                              f"would be saved with the run); {USE_LOGIN}")


def check_wandb_online(cfg: DictConfig) -> None:
    """A wandb logger set online (logger.wandb.offline=false, WANDB_MODE=online) without
    credentials is one line now, not a login prompt or a traceback at the first logged step."""
    for name, node in (cfg.get("logger") or {}).items():
        if not str(node.get("_target_", "")).endswith("WandbLogger") or node.get("offline"):
            continue
        if wandb_mode() not in (*OFFLINE_MODES, "disabled") and not has_credentials():
            raise ConfigError(f"logger.{name} is online (logger.{name}.offline=false or "
                              "WANDB_MODE=online) but no W&B API key was found: set "
                              "WANDB_API_KEY or run `wandb login`, or log offline with "
                              f"logger.{name}.offline=true")


OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
OmegaConf.register_new_resolver("wandb_log_model", wandb_log_model, replace=True)
