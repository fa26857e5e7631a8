"""Every config group choice composes with the rest and instantiates."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning import Trainer
from omegaconf.errors import MissingMandatoryValue

from conftest import TINY, compose_config
from seglab.core.errors import ConfigError
from seglab.engine.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_module,
    build_trainer,
)
from seglab.models import MODELS, supported_encoders
from seglab.runs.config import check_config, config_dir, select_sole_encoder, unknown_choice


def choices(group: str) -> list[str]:
    return sorted(path.stem for path in (Path(config_dir()) / group).glob("*.yaml"))


def test_default_config_is_the_documented_one(tmp_path):
    cfg = compose_config("train", tmp_path)
    assert (cfg.model.name, cfg.encoder.name, cfg.data.name) == ("unet", "resnet18", "synthetic")
    assert cfg.seed == 0
    assert choices("trainer") == ["cpu", "ddp", "ddp_cpu", "debug", "default", "gpu", "gpu_amp"]
    assert choices("logger") == ["csv", "none", "tensorboard", "wandb"]
    assert choices("optimizer") == ["adam", "adamw", "sgd"]
    assert choices("scheduler") == ["cosine", "none", "plateau", "poly"]
    assert choices("loss") == ["ce", "ce_dice", "dice", "focal"]


@pytest.mark.parametrize("model", choices("model"))
def test_every_model_choice_builds_through_its_config(tmp_path, model):
    encoder = supported_encoders(model)[0]
    cfg = compose_config("train", tmp_path, [*TINY, f"model={model}", f"encoder={encoder}"])
    check_config(cfg)
    net = instantiate(cfg.model)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)


@pytest.mark.parametrize("encoder", [name for name in choices("encoder") if name != "timm"])
def test_every_encoder_choice_is_a_registry_encoder(tmp_path, encoder):
    cfg = compose_config("train", tmp_path, [f"encoder={encoder}"])
    model = next(name for name in MODELS if cfg.model.encoder in supported_encoders(name))
    cfg = compose_config("train", tmp_path, [f"model={model}", f"encoder={encoder}"])
    check_config(cfg)
    timm_backbone = "smp_name" in cfg.encoder
    assert cfg.model.encoder == (f"tu-{encoder}" if timm_backbone else encoder)


@pytest.mark.parametrize("group", ["loss", "optimizer", "scheduler"])
def test_training_choices_build_a_module_that_configures_optimizers(tmp_path, group):
    for choice in choices(group):
        cfg = compose_config("train", tmp_path, [*TINY, f"{group}={choice}"])
        check_config(cfg)
        module = build_module(cfg, ["background", "disc", "box", "triangle"])
        trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False)
        trainer.fit_loop.max_batches = 4  # what estimated_stepping_batches reads
        module.trainer = trainer
        assert "optimizer" in module.configure_optimizers()


@pytest.mark.parametrize("choice", choices("trainer"))
def test_trainer_choices_instantiate(tmp_path, choice):
    cfg = compose_config("train", tmp_path, [*TINY, f"trainer={choice}"])
    if cfg.trainer.accelerator == "gpu":
        assert cfg.trainer.devices == ("auto" if choice == "ddp" else 1)
        if choice == "ddp":
            assert (cfg.trainer.strategy, cfg.trainer.sync_batchnorm) == ("ddp", True)
        if choice == "gpu_amp":
            assert cfg.trainer.precision == "bf16-mixed"
        return  # no GPU in CI: the composed values are what can be checked here
    trainer = build_trainer(cfg, build_callbacks(cfg), build_loggers(cfg))
    assert isinstance(trainer, Trainer)


@pytest.mark.parametrize("choice", choices("logger"))
def test_logger_choices_instantiate(tmp_path, choice):
    cfg = compose_config("train", tmp_path, [*TINY, f"logger={choice}"])
    loggers = build_loggers(cfg)
    assert len(loggers) == (0 if choice == "none" else 1)
    for logger in loggers:
        assert str(tmp_path) in str(logger.save_dir)


@pytest.mark.parametrize("choice", choices("callbacks"))
def test_callback_choices_instantiate(tmp_path, choice):
    cfg = compose_config("train", tmp_path, [*TINY, f"callbacks={choice}"])
    names = {type(callback).__name__ for callback in build_callbacks(cfg)}
    assert {"ModelCheckpoint", "EpochHistory"} <= names


@pytest.mark.parametrize("choice", choices("data"))
def test_data_choices_compose_and_file_datasets_need_a_root(tmp_path, choice):
    cfg = compose_config("train", tmp_path, [*TINY[2:], f"data={choice}"])
    assert cfg.data.name == choice
    check_config(cfg)
    if choice == "synthetic":
        assert len(build_datamodule(cfg).class_names) == cfg.data.num_classes
    else:
        with pytest.raises(MissingMandatoryValue, match="data.root"):
            build_datamodule(cfg)


@pytest.mark.parametrize("choice", choices("experiment") + choices("debug"))
def test_experiment_and_debug_bundles_compose(tmp_path, choice):
    group = "experiment" if choice in choices("experiment") else "debug"
    cfg = compose_config("train", tmp_path, [f"{group}={choice}"])
    check_config(cfg)


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=abc", "data.batch_size = 'abc' (str): expected a positive integer"),
    ("optimizer.lr=-1", "optimizer.lr = -1 (int): expected a positive number"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs = 1.5 (float): expected a positive integer, "
                               "-1 (no limit) or null"),
    ("seed=zero", "seed = 'zero' (str): expected an integer"),
])
def test_wrong_types_are_named(tmp_path, override, message):
    cfg = compose_config("train", tmp_path, [override])
    with pytest.raises(ConfigError, match=f"config key {message}".replace("(", r"\(")
                       .replace(")", r"\)")):
        check_config(cfg)


def test_unknown_choices_are_found_before_hydra_runs():
    assert unknown_choice(["model=unet", "encoder=resnet18,mobilenet_v2", "seed=3"]) is None
    assert unknown_choice(["trainer.max_epochs=3", "+experiment=synthetic_unet"]) is None
    assert unknown_choice(["encoder=choice(resnet18,x)", "debug=null"]) is None
    assert unknown_choice(["loss=ce,dicee"]) == (
        "unknown loss 'dicee' in 'loss=ce,dicee'; valid choices for loss: ce, ce_dice, dice, "
        "focal")


@pytest.mark.parametrize("model, encoder", [("unet_classic", "none"), ("fcn8s", "vgg16"),
                                            ("lraspp", "mobilenet_v3_large")])
def test_a_single_encoder_model_selects_its_encoder(tmp_path, model, encoder):
    cfg = compose_config("train", tmp_path, [f"model={model}"])
    select_sole_encoder(cfg, [f"model={model}"])
    check_config(cfg)
    assert (cfg.encoder.name, cfg.model.encoder) == (encoder, encoder)


def test_an_encoder_named_on_the_command_line_is_kept_and_checked(tmp_path):
    overrides = ["model=fcn8s", "encoder=resnet18"]
    cfg = compose_config("train", tmp_path, overrides)
    select_sole_encoder(cfg, overrides)
    assert cfg.encoder.name == "resnet18"
    with pytest.raises(ConfigError, match="encoders that work: vgg16;"):
        check_config(cfg)
