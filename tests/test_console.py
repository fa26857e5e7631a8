"""A quiet, honest console: the run header first (with the recipe and the model settings that
differ from the model's own config), each Lightning line once, no notice a user cannot act
on; and the same in metrics.json and `--cfg job`."""

from __future__ import annotations

import json

import yaml
from omegaconf import OmegaConf

from conftest import TINY, compose_config, config_dir, run_cli
from seglab.runs.header import _plain, header_lines, model_changes


def test_a_run_off_a_terminal_prints_its_header_first_and_each_line_once(tmp_path):
    with_summary = [item for item in TINY if "model_summary" not in item]
    result = run_cli(["seglab-train", *with_summary, "trainer.precision=bf16-mixed",
                      f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == ("train: model=unet encoder=resnet18 data=synthetic input=32×32 "
                        "precision=bf16-mixed")
    assert lines[1] == f"writing to {tmp_path}/run"
    assert lines[2].startswith("recipe=unet_resnet18_synthetic sets model.encoder_depth=3 "
                               "model.decoder_channels=[64,32,16]")
    output = result.stdout + result.stderr
    for line in ("Seed set to 0", "GPU available: False, used: False", "`Trainer.fit` stopped"):
        assert output.count(line) == 1, line
    assert "INFO: Seed set to 0" in output.splitlines()  # plain lines, no timestamps
    for notice in ("LeafSpec", "is not supported by the model summary", "Tip:"):
        assert notice not in output, notice
    log = (tmp_path / "run" / "train.log").read_text()  # the run's log keeps its times
    assert "[lightning.fabric.utilities.seed][INFO] - Seed set to 0" in log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["recipe"] == "unet_resnet18_synthetic"
    assert metrics["model_changes"] == {"encoder_depth": 3, "decoder_channels": [64, 32, 16],
                                        "channels_last": True}


def test_recipe_null_is_one_line_naming_the_way_to_drop_it(tmp_path):
    result = run_cli(["seglab-train", "recipe=null"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: recipe=null: the recipe follows from model, encoder and data "
        "(conf/recipe/<model>_<encoder>_<data>.yaml); drop it with '~recipe'"]


def test_cfg_job_names_the_recipe_and_what_it_sets(tmp_path):
    result = run_cli(["seglab-train", "--cfg", "job"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = yaml.safe_load(result.stdout)
    assert shown["recipe"]["name"] == "unet_resnet18_synthetic"
    assert "model.encoder_depth=3" in shown["recipe"]["sets"]
    assert shown["model"]["encoder_depth"] == 3


def test_without_the_recipe_the_model_is_as_its_config_file_says(tmp_path):
    cfg = compose_config("train", tmp_path / "run", ["~recipe"])
    assert OmegaConf.select(cfg, "recipe") is None and model_changes(cfg) == {}
    assert cfg.model.encoder_depth == 5 and cfg.trainer.max_epochs != 4
    assert len(header_lines(cfg, tmp_path, "train")) == 2


def test_a_recipe_setting_overridden_on_the_command_line_says_so(tmp_path):
    cfg = compose_config("train", tmp_path / "run", ["trainer.max_epochs=2",
                                                     "model.channels_last=false"])
    assert header_lines(cfg, tmp_path, "train")[2] == (
        "recipe=unet_resnet18_synthetic sets model.encoder_depth=3 "
        "model.decoder_channels=[64,32,16] model.channels_last=true (overridden: false) "
        "trainer.max_epochs=7 (overridden: 2) (conf/recipe/unet_resnet18_synthetic.yaml; "
        "'~recipe' drops it)")


def test_other_choices_get_no_recipe_and_command_line_changes_are_named(tmp_path):
    cfg = compose_config("train", tmp_path / "run", ["data=pets", "model.encoder_depth=4",
                                                     "model.decoder_channels=[64,32,16,8]"])
    assert OmegaConf.select(cfg, "recipe") is None
    assert model_changes(cfg) == {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 8]}
    assert header_lines(cfg, tmp_path, "train")[2] == (
        "model settings other than conf/model/unet.yaml's: model.encoder_depth=4 "
        "model.decoder_channels=[64,32,16,8]")


def test_every_recipe_lists_exactly_what_it_sets():
    for path in sorted((config_dir_path() / "recipe").glob("*.yaml")):
        recipe = OmegaConf.load(path)
        listed = list(recipe.recipe.sets)
        settings = OmegaConf.to_container(recipe, resolve=False)
        settings.pop("recipe")
        written = [f"{key}={_plain(value)}" for key, value in _flat(settings).items()]
        assert listed == written, path.name
        assert recipe.recipe.name == path.stem


def config_dir_path():
    from pathlib import Path
    return Path(config_dir())


def _flat(node: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

