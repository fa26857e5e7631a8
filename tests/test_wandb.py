"""logger=wandb without a key: offline runs that hold the config, the metrics and the
prediction images, checkpoints uploaded only online, and an API key that never reaches a
config, a log, metrics.json or the wandb folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import TINY, compose_config, wandb_records
from seglab.cli.arguments import exit_on_command_line_error
from seglab.core.errors import ConfigError
from seglab.engine.training import train
from seglab.runs.task import run_task
from seglab.runs.wandb_setup import api_key_override, check_wandb_online, refuse_api_key

WANDB = [*TINY[:-1], "encoder=mobilenet_v2", "logger=wandb"]  # TINY without logger=none
FAKE_KEY = "seglabtestfakekey" + "7" * 23  # 40 characters, as a real key


def _isolate_wandb(home: Path, monkeypatch, **env: str) -> None:
    """No W&B credentials or chosen mode, wandb's folders under `home`, then `env`."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL",
                 "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"HOME": home, "NETRC": home / ".netrc",
                        "WANDB_CONFIG_DIR": home / ".config" / "wandb",
                        "WANDB_CACHE_DIR": home / ".cache" / "wandb",
                        "WANDB_DATA_DIR": home / ".local" / "wandb",
                        "WANDB_ARTIFACT_DIR": home / "artifacts", **env}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(home.parent)  # no ./wandb/settings of the repository


@pytest.fixture
def no_key(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    _isolate_wandb(home, monkeypatch)
    return home


def _offline_run(output_dir: Path) -> tuple[Path, dict, dict]:
    """The one offline run under output_dir/wandb: its folder, its config (key -> value) and
    its history (key -> logged values in order; nested keys joined by '/')."""
    folders = list((output_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    config, history = {}, {}
    for record in wandb_records(next(folders[0].glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
    return folders[0], config, history


def _stop_wandb() -> None:
    """Finish any run and stop wandb's service process (started with this test's environment
    and settings), so the next run starts one with its own."""
    import wandb
    if wandb.run is not None:
        wandb.finish(exit_code=1)
    wandb.teardown()


@pytest.fixture(autouse=True)
def _wandb_stopped_after_each_test():
    yield
    _stop_wandb()


@pytest.mark.parametrize("env, netrc, settings, offline, log_model", [
    ({}, "", "", True, False),
    ({"WANDB_API_KEY": FAKE_KEY}, "", "", False, True),
    ({}, f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n", "", False, True),
    ({}, f"machine wandb.example.org login user password {FAKE_KEY}\n", "", True, False),
    ({}, "", f"[default]\napi_key = {FAKE_KEY}\n", False, True),
    ({}, "", "[default]\nmode = offline\n", True, False),
    ({"WANDB_API_KEY": FAKE_KEY, "WANDB_MODE": "offline"}, "", "", True, False),
    ({"WANDB_MODE": "online"}, "", "", False, True),
    ({"WANDB_MODE": "disabled"}, "", "", False, False),  # left to wandb: it logs nothing
], ids=["no-key", "env-key", "netrc", "netrc-other-host", "settings-key", "wandb-offline",
        "key-but-WANDB_MODE-offline", "no-key-but-WANDB_MODE-online", "WANDB_MODE-disabled"])
def test_offline_unless_a_key_exists_and_checkpoints_upload_only_online(
        tmp_path, monkeypatch, env, netrc, settings, offline, log_model):
    home = tmp_path / "home"
    (home / ".config" / "wandb").mkdir(parents=True)
    (home / ".netrc").write_text(netrc)
    (home / ".config" / "wandb" / "settings").write_text(settings)
    _isolate_wandb(home, monkeypatch, **env)
    cfg = compose_config("train", tmp_path / "run", WANDB)
    assert (cfg.logger.wandb.offline, cfg.logger.wandb.log_model) == (offline, log_model)
    logger = instantiate(cfg.logger.wandb)  # Lightning refuses log_model with offline
    assert (logger._offline, logger._log_model) == (offline, log_model)


def test_an_explicit_choice_wins_over_the_key(tmp_path, no_key, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = compose_config("train", tmp_path / "run", [*WANDB, "logger.wandb.offline=true"])
    assert (cfg.logger.wandb.offline, cfg.logger.wandb.log_model) == (True, False)
    monkeypatch.delenv("WANDB_API_KEY")
    cfg = compose_config("train", tmp_path / "run", [*WANDB, "logger.wandb.log_model=all"])
    assert (cfg.logger.wandb.offline, cfg.logger.wandb.log_model) == (True, "all")
    with pytest.raises(Exception, match="log_model=all and offline=True is an invalid"):
        instantiate(cfg.logger.wandb)  # Lightning's refusal: offline, nothing to upload to


def test_online_without_a_key_is_one_clear_line(tmp_path, no_key, capsys):
    cfg = compose_config("train", tmp_path / "run", [*WANDB, "logger.wandb.offline=false"])
    with pytest.raises(ConfigError, match=r"no W&B API key .* WANDB_API_KEY .* `wandb login`"):
        check_wandb_online(cfg)
    with pytest.raises(SystemExit):
        run_task(train, cfg)
    assert "no W&B API key" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["status"], metrics["model"]) == ("failed", "unet")  # refused, but recorded


def test_offline_run_without_a_key_starts_and_records(tmp_path, no_key):
    """No key, no prompt: the logger of the composed config writes an offline run."""
    cfg = compose_config("train", tmp_path / "run", WANDB)
    logger = instantiate(cfg.logger.wandb)
    logger.log_metrics({"val/mIoU": 0.5}, step=1)
    _stop_wandb()  # wandb-core may still be writing the run file until it stops
    _, _, history = _offline_run(tmp_path / "run")
    assert history["val/mIoU"] == [0.5]


@pytest.fixture(scope="module")
def keyed_offline_run(tmp_path_factory):
    """A tiny training run with logger=wandb while WANDB_API_KEY holds a fake key and
    WANDB_MODE=offline: the folder that holds the run, wandb's home and all."""
    root = tmp_path_factory.mktemp("wandb_run")
    (root / "home").mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate_wandb(root / "home", monkeypatch, WANDB_API_KEY=FAKE_KEY, WANDB_MODE="offline")
        cfg = compose_config("train", root / "run", WANDB)
        try:
            run_task(train, cfg)
        finally:
            _stop_wandb()
    return root


def test_offline_run_holds_config_metrics_and_prediction_images(keyed_offline_run):
    output_dir = keyed_offline_run / "run"
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    folder, config, history = _offline_run(output_dir)
    assert (config["model"], config["encoder"], config["data"]) == \
        ("unet", "mobilenet_v2", "synthetic")
    assert config["optimizer.lr"] == pytest.approx(0.003)
    for key in ("val/mIoU", "test/mIoU", "test/pixel_acc"):
        assert history[key][-1] == pytest.approx(metrics[key]), key
    assert history["final/val_mIoU_best"] == [pytest.approx(metrics["val/mIoU_best"])]
    assert history["final/test_mIoU"] == [pytest.approx(metrics["test/mIoU"])]
    assert history["val/predictions/_type"] == ["images/separated"]
    assert history["val/predictions/count"] == [4]
    images = sorted((folder / "files" / "media" / "images" / "val").glob("predictions_*.png"))
    masks = list((folder / "files" / "media" / "images" / "mask" / "val").glob("*.mask.png"))
    assert len(images) == 4 and len(masks) == 8  # prediction and ground truth of each
    assert not list(folder.rglob("*artifact*"))  # offline: no checkpoint upload


def test_the_key_is_in_no_file_of_the_run(keyed_offline_run):
    files = [path for path in keyed_offline_run.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"config.yaml", "metrics.json"} <= names
    assert any(name.endswith(".wandb") for name in names)
    assert {"debug.log", "debug-internal.log"} <= names  # the run's wandb logs
    assert any(name.startswith("core-debug") for name in names)  # wandb-core's, in its home
    holding = [path for path in files if FAKE_KEY.encode() in path.read_bytes()]
    assert holding == []


@pytest.mark.parametrize("override", ["+logger.wandb.api_key=", "++logger.wandb.api_key=",
                                      "+logger.wandb.settings.api_key="])
def test_an_api_key_in_the_config_is_refused_before_anything_is_saved(tmp_path, no_key,
                                                                       override, capsys):
    cfg = compose_config("train", tmp_path / "run", [*WANDB, override + FAKE_KEY])
    with pytest.raises(SystemExit):
        run_task(train, cfg)
    error = capsys.readouterr().err
    assert "WANDB_API_KEY" in error and "wandb login" in error and FAKE_KEY not in error
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "api_key" in metrics["error"]
    assert not [path for path in tmp_path.rglob("*")
                if path.is_file() and FAKE_KEY.encode() in path.read_bytes()]


def test_the_key_s_value_under_another_name_is_refused(tmp_path, no_key, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    cfg = compose_config("train", tmp_path / "run",
                         [*WANDB, "+logger.wandb.notes=${oc.env:WANDB_API_KEY}"])
    with pytest.raises(ConfigError, match=r"config key logger\.wandb\.\S+: an API key") as error:
        refuse_api_key(cfg)
    assert FAKE_KEY not in str(error.value)


def test_an_api_key_override_stops_the_command_before_hydra(monkeypatch, capsys):
    assert api_key_override(["model=unet", "logger=wandb", "logger.wandb.offline=true"]) is None
    for argument in ("+logger.wandb.api_key=", "hydra.job.env_set.WANDB_API_KEY="):
        monkeypatch.setattr(sys, "argv", ["seglab-train", "logger=wandb", argument + FAKE_KEY])
        with pytest.raises(SystemExit) as stop:
            exit_on_command_line_error()
        assert stop.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "WANDB_API_KEY" in error and "wandb login" in error
        assert FAKE_KEY not in error
