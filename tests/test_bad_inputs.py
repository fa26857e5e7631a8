"""Every bad input a new user can give, through the console scripts as a user runs them: one
line naming the key or file, a non-zero exit, no traceback, and nothing already written
changed. The scripts run in-process (a subprocess costs seconds of imports per case)."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from PIL import Image

from conftest import TINY, compose_config
from fixtures import write_folder
from seglab.core.errors import ConfigError
from seglab.data.checks import check_split
from seglab.data.folder import folder_dataset
from seglab.engine.builders import build_module
from seglab.engine.training import train
from seglab.inference.evaluation import evaluate
from seglab.inference.prediction import predict

RUN = [*TINY, "data.lengths={train:8,val:8,test:8}", "model=unet_classic",
       "model.base_channels=4"]
BOMB_SIZE = (10_000, 9_000)  # 90 megapixels in an 11 kB PNG: above Pillow's 89.5 MP limit
# loggers whose handlers Hydra and seglab set up for a run; restored after each case
LOGGERS = ("", "lightning.pytorch", "lightning.fabric")


@dataclass(frozen=True)
class Bad:
    """One bad input: the console script, its arguments and the text that must name the
    problem ({...} are workspace paths). `report`: the problem is listed on stdout (a data
    check report, predict's failed pictures) rather than in the error line."""

    command: str
    args: tuple[str, ...]
    expected: str
    report: bool = False


def bad(command: str, args: str, expected: str, report: bool = False, marks=()):
    return pytest.param(Bad(command, tuple(args.split()), expected, report), marks=marks,
                        id=f"{command} {args}".replace("{", "").replace("}", ""))


CLASSES = ["background", "disc", "box", "triangle"]
CONTRADICTION = "contradicts ckpt_path={ckpt}, trained as model=unet_classic encoder=none"
CORPUS = [
    # seglab-train: values of the wrong type or range
    bad("train", "data.num_classes=9", "data.num_classes = 9: the synthetic scenes have 2 to 6"),
    bad("train", "data.num_classes=1", "data.num_classes = 1 (int): expected an integer of at"),
    bad("train", "data.lengths={train:32,val:0,test:16}",
        "data.lengths = {'train': 32, 'val': 0, 'test': 16}: expected a positive number of "
        "scenes for the val split"),
    bad("train", "data.lengths=train:32", "data.lengths = 'train:32': expected the number of "
        "scenes of each split"),
    bad("train", "optimizer.lr=abc", "optimizer.lr = 'abc' (str): expected a positive number"),
    bad("train", "optimizer.lr=-1", "optimizer.lr = -1 (int): expected a positive number"),
    bad("train", "optimizer.lr=0", "optimizer.lr = 0 (int): expected a positive number"),
    bad("train", "data.batch_size=0", "data.batch_size = 0 (int): expected a positive integer"),
    bad("train", "data.batch_size=-4", "data.batch_size = -4 (int): expected a positive"),
    bad("train", "trainer.max_epochs=0", "trainer.max_epochs = 0 (int): expected a positive"),
    bad("train", "trainer.max_epochs=-1", "trainer.max_epochs = -1 (no limit): the scheduler"),
    bad("train", "data.mean=[0.5,0.5]", "data.mean = [0.5, 0.5] (list): expected 3 numbers"),
    bad("train", "data.std=[0.2,0.2,0]", "data.std = [0.2, 0.2, 0] (list): expected 3 positive"),
    bad("train", "data.input_size=[0,32]", "data.input_size = [0, 32] (list): expected a"),
    bad("train", "data.hflip=abc", "data.hflip = 'abc' (str): expected a probability"),
    bad("train", "data.class_names=[a,b]", "data.class_names = ['a', 'b']: expected 4 names"),
    bad("train", "loss=ce loss.class_weights=[1,2]",
        "loss.class_weights = [1, 2]: expected auto or a list of 4 numbers"),
    bad("train", "loss=ce_dice loss.terms.ce.class_weights=[1,1,a,1]",
        "loss.terms.ce.class_weights = [1, 1, 'a', 1]: expected auto"),
    bad("train", "loss=focal loss.gamma=abc", "loss.gamma = 'abc' (str): expected a non-negative"),
    bad("train", "loss=ce_dice loss.weights={ce:abc,dice:1}",
        "loss.weights = {'ce': 'abc', 'dice': 1} (dict): expected a non-negative number per"),
    bad("train", "scheduler=plateau scheduler.factory.patience=abc",
        "scheduler.factory.patience = 'abc' (str): expected a non-negative number of epochs"),
    bad("train", "seed=abc", "seed = 'abc' (str): expected an integer"),
    bad("train", "trust_checkpoint=maybe", "trust_checkpoint = 'maybe' (str): expected true or"),
    # seglab-train: choices, data roots, starting weights, a finished run folder
    bad("train", "model=unett", "unknown model 'unett' in 'model=unett'; valid choices"),
    bad("train", "model=fcn8s encoder=resnet18", "model 'fcn8s' does not support encoder"),
    bad("train", "data=voc", "data.root: no value given; expected one on the command line"),
    bad("train", "data=voc data.root={missing}", "data.root = {missing}: does not exist"),
    bad("train", "data=folder data.root={text}", "data.root = {text}: is a file, not a folder"),
    bad("train", "data=folder data.root={empty_data} data.num_workers=0",
        "split 'train' is empty", report=True),
    bad("train", "data=folder data.root={bomb_data} data.num_workers=0",
        "{bomb_data}/images/painting_000.jpg: more than PIL.Image.MAX_IMAGE_PIXELS=", report=True),
    bad("train", "model.weights={truncated}", "model.weights: {truncated} is truncated or corrupt"),
    bad("train", "model.weights={text}", "model.weights: {text} is not a PyTorch checkpoint"),
    bad("train", "model.weights={pickled_ckpt}",
        "model.weights: {pickled_ckpt} contains pickled objects that can run code"),
    bad("train", "hydra.run.dir={run}", "run folder {run} already holds a finished run"),
    # seglab-eval: checkpoints that cannot work, overrides that contradict them
    bad("eval", "ckpt_path={ckpt} model=fcn", f"model=fcn: {CONTRADICTION}"),
    bad("eval", "ckpt_path={ckpt} data.num_classes=7", f"data.num_classes=7: {CONTRADICTION}"),
    bad("eval", "ckpt_path={ckpt} encoder=resnet18", f"encoder=resnet18: {CONTRADICTION}"),
    bad("eval", "ckpt_path={missing}", "ckpt_path: no checkpoint file at {missing}"),
    bad("eval", "ckpt_path={run}", "ckpt_path: {run} is a folder; expected a checkpoint file"),
    bad("eval", "ckpt_path={empty}", "ckpt_path: {empty} is empty; expected a PyTorch checkpoint"),
    bad("eval", "ckpt_path={truncated}", "ckpt_path: {truncated} is truncated or corrupt"),
    bad("eval", "ckpt_path={text}", "ckpt_path: {text} is not a PyTorch checkpoint"),
    bad("eval", "ckpt_path={state_dict}", "ckpt_path: {state_dict} was not written by seglab"),
    bad("eval", "ckpt_path={pickled_ckpt}", "ckpt_path: {pickled_ckpt} contains pickled objects "
        "that can run code; pass trust_checkpoint=true only for a file you made or trust"),
    bad("eval", "ckpt_path={other_model_ckpt}", "ckpt_path: {other_model_ckpt} does not fit the "
        "network of its run config (model=unet_classic encoder=none data.num_classes=4): "),
    bad("eval", "ckpt_path={five_class_ckpt}", "ckpt_path: {five_class_ckpt} holds 5 classes but "
        "its run's config"),
    bad("eval", "ckpt_path={ckpt} data.lengths={train:8,val:8,test:0}",
        "data.lengths = {'train': 8, 'val': 8, 'test': 0}: expected a positive number of scenes "
        "for the test split"),
    bad("eval", "ckpt_path={ckpt} data.mean=[0.5]", "data.mean = [0.5] (list): expected 3"),
    bad("eval", "ckpt_path={ckpt} trust_checkpoint=abc", "trust_checkpoint = 'abc': expected"),
    bad("eval", "", "seglab-eval needs ckpt_path=<run>/checkpoints/best.ckpt"),
    # seglab-predict
    bad("predict", "ckpt_path={ckpt} input={picture} model=fcn", f"model=fcn: {CONTRADICTION}"),
    bad("predict", "ckpt_path={truncated} input={picture}", "ckpt_path: {truncated} is truncated"),
    bad("predict", "ckpt_path={pickled_ckpt} input={picture}", "{pickled_ckpt} contains pickled"),
    bad("predict", "ckpt_path={ckpt} input={missing}", "input: no file or folder at {missing}"),
    bad("predict", "ckpt_path={ckpt} input={picture} predict.alpha=2",
        "predict.alpha = 2 (int): expected an opacity in [0, 1]"),
    bad("predict", "ckpt_path={ckpt} input={picture} predict.batch_size=0",
        "predict.batch_size = 0 (int): expected a positive integer"),
    bad("predict", "ckpt_path={ckpt} input={picture} predict.mode=slide predict.overlap=abc",
        "predict.overlap = 'abc' (str): expected a fraction in [0, 1)"),
    bad("predict", "ckpt_path={ckpt} input={bomb}",
        "{bomb}: 10000×9000 pixels, above predict.max_pixels=50000000", report=True),
    bad("predict", "onnx_path={text} input={picture}", "onnx_path: {text} is not a readable ONNX"),
    bad("predict", "ckpt_path={ckpt} input={picture} output={run}",
        "output: {run} is a training or evaluation run folder"),
    # seglab-export
    bad("export", "", "ckpt_path: no value given; expected one on the command line"),
    bad("export", "ckpt_path={ckpt} data.num_classes=7", f"data.num_classes=7: {CONTRADICTION}"),
    bad("export", "ckpt_path={truncated}", "ckpt_path: {truncated} is truncated or corrupt"),
    bad("export", "ckpt_path={ckpt} format=tflite", "format='tflite': expected one of onnx"),
    bad("export", "ckpt_path={ckpt} input_size=[32]", "input_size=[32]: expected [height, width]"),
    bad("export", "ckpt_path={ckpt} hydra.run.dir={run}",
        "hydra.run.dir: {run} is a training or evaluation run folder"),
    # seglab-check-data
    bad("check_data", "data.num_classes=9", "data.num_classes = 9: the synthetic scenes have"),
    bad("check_data", "data.lengths={train:32,val:0,test:16}", "for the val split"),
    bad("check_data", "data=pets", "data.root: no value given"),
    bad("check_data", "data=voc data.root={text}", "data.root = {text}: is a file, not a folder"),
    bad("check_data", "data=folder data.root={empty_data}", "split 'val' is empty", report=True),
    bad("check_data", "data=folder data.root={bomb_data}",
        "{bomb_data}/images/painting_000.jpg: more than PIL.Image.MAX_IMAGE_PIXELS=", report=True),
]


def write_bomb(path: Path) -> None:
    """A PNG of BOMB_SIZE one-bit pixels: a few kB on disk, 90 MP once decoded."""
    Image.new("1", BOMB_SIZE).save(path, format="PNG")


def copy_run(run: Path, folder: Path, checkpoint: dict) -> Path:
    """A run folder with `run`'s config and `checkpoint` as its best.ckpt."""
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / ".hydra", folder / ".hydra")
    torch.save(checkpoint, folder / "checkpoints" / "best.ckpt")
    return folder / "checkpoints" / "best.ckpt"


def write_checkpoints(run: Path, files: Path) -> dict[str, Path]:
    """Checkpoint files that cannot be used as they are, beside copies of the run."""
    ckpt = run / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    paths = {name: files / name for name in ("truncated.ckpt", "empty.ckpt", "state_dict.pt")}
    data = ckpt.read_bytes()
    paths["truncated.ckpt"].write_bytes(data[: len(data) // 2])
    paths["empty.ckpt"].write_bytes(b"")
    torch.save({"w": torch.zeros(2)}, paths["state_dict.pt"])
    pickled = {**checkpoint, "options": argparse.Namespace(lr=0.1)}  # an object: needs trust
    other_model = {**checkpoint, "state_dict": {"net.other.weight": torch.zeros(3, 3)}}
    five_classes = {**checkpoint, "seglab": {**checkpoint["seglab"],
                                              "class_names": ["a", "b", "c", "d", "e"]}}
    return {"truncated": paths["truncated.ckpt"], "empty": paths["empty.ckpt"],
            "state_dict": paths["state_dict.pt"],
            "pickled_ckpt": copy_run(run, files / "pickled_run", pickled),
            "other_model_ckpt": copy_run(run, files / "other_model_run", other_model),
            "five_class_ckpt": copy_run(run, files / "five_class_run", five_classes)}


def write_datasets(files: Path) -> dict[str, Path]:
    """`folder` datasets: one without samples, one with a decompression bomb among its images."""
    for part in ("images", "masks"):
        (files / "empty_data" / part).mkdir(parents=True)
    write_folder(files / "bomb_data", count=6)
    write_bomb(files / "bomb_data" / "images" / "painting_000.jpg")
    return {"empty_data": files / "empty_data", "bomb_data": files / "bomb_data"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """One tiny trained run (a 4-channel classic U-Net) and the bad files of the corpus; the
    paths the cases name, as strings."""
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    train(compose_config("train", run, RUN))
    (run / "train.log").write_text("the log seglab-train writes beside every run\n")
    files = root / "files"
    files.mkdir()
    (files / "notes.txt").write_text("not a checkpoint, not a folder\n")
    Image.new("RGB", (40, 30)).save(files / "picture.png")
    write_bomb(files / "bomb.png")
    paths = {"run": run, "ckpt": run / "checkpoints" / "best.ckpt", "files": files,
             "text": files / "notes.txt", "missing": files / "missing",
             "picture": files / "picture.png", "bomb": files / "bomb.png",
             **write_checkpoints(run, files), **write_datasets(files)}
    return {name: str(path) for name, path in paths.items()}


def snapshot(*folders: str) -> dict[str, tuple[str, int]]:
    """Every file under `folders`: its content hash and modification time."""
    return {str(path): (hashlib.sha1(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for folder in folders for path in sorted(Path(folder).rglob("*")) if path.is_file()}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A case's own cwd, outputs and data-check cache; the loggers, Pillow's pixel limit and
    the command line as they were, afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEGLAB_LOG_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    saved = {name: (logging.getLogger(name), list(logging.getLogger(name).handlers),
                    logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in LOGGERS}
    yield tmp_path
    for logger, handlers, level, propagate in saved.values():
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def run_script(command: str, args: list[str]) -> int:
    """`seglab-<command> args` in this process: its exit code (0 when it returns)."""
    sys.argv = [f"seglab-{command.replace('_', '-')}", *args]
    try:
        importlib.import_module(f"seglab.cli.{command}").main()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


def fill(text: str, paths: dict[str, str]) -> str:
    """`text` with each {name} of the workspace replaced by its path."""
    for name, path in paths.items():
        text = text.replace(f"{{{name}}}", path)
    return text


def tiny_training(args: list[str]) -> list[str]:
    """TINY's limits, for the synthetic scenes unless the case names other data."""
    other_data = any(arg.startswith("data=") for arg in args)
    return [item for item in TINY if not (other_data and item.startswith("data.lengths"))]


def output_args(case: Bad, out: Path) -> list[str]:
    """Where a case writes, unless the case names it itself."""
    if any(arg.startswith(("hydra.run.dir=", "output=")) for arg in case.args):
        return []
    return [f"output={out}"] if case.command == "predict" else [f"hydra.run.dir={out}"]


@pytest.mark.parametrize("case", CORPUS)
def test_a_bad_input_is_one_line_and_changes_nothing(case, workspace, isolated, capfd):
    args = [fill(arg, workspace) for arg in case.args]
    if case.command == "train":
        args = [*tiny_training(args), *args]
    before = snapshot(workspace["run"], workspace["files"])
    code = run_script(case.command, [*args, *output_args(case, isolated / "out")])
    out, err = capfd.readouterr()
    expected = fill(case.expected, workspace)
    assert code != 0, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err, err[-3000:]
    errors = err.strip().splitlines()
    if case.report:
        assert expected in out, out[-3000:]
        assert len(errors) <= 1 and all(line.startswith("error: ") for line in errors), err
    else:
        assert len(errors) == 1 and errors[0].startswith("error: "), err[-3000:]
        assert expected in errors[0]
    assert snapshot(workspace["run"], workspace["files"]) == before


def test_trust_checkpoint_evaluates_a_file_with_pickled_objects(workspace, tmp_path):
    metrics, _ = evaluate(compose_config("eval", tmp_path / "eval", [
        f"ckpt_path={workspace['pickled_ckpt']}", "trust_checkpoint=true"]))
    saved = json.loads((Path(workspace["run"]) / "metrics.json").read_text())
    assert metrics["test/mIoU"] == pytest.approx(saved["test/mIoU"], abs=1e-4)


def test_trust_checkpoint_loads_a_file_with_pickled_objects(workspace, tmp_path):
    overrides = [f"ckpt_path={workspace['pickled_ckpt']}", f"input={workspace['picture']}",
                 "predict.num_workers=0"]
    with pytest.raises(ConfigError, match="contains pickled objects that can run code"):
        predict(compose_config("predict", tmp_path / "refused", overrides))
    summary, _ = predict(compose_config("predict", tmp_path / "trusted",
                                        [*overrides, "trust_checkpoint=true"]))
    assert summary["status"] == "completed" and summary["images"] == 1


def test_a_run_config_never_grants_trust(workspace, tmp_path):
    run = shutil.copytree(Path(workspace["pickled_ckpt"]).parent.parent, tmp_path / "run")
    config_file = run / ".hydra" / "config.yaml"
    run_cfg = OmegaConf.load(config_file)
    run_cfg.trust_checkpoint = True
    OmegaConf.save(run_cfg, config_file)
    with pytest.raises(ConfigError, match="pass trust_checkpoint=true only for a file"):
        predict(compose_config("predict", tmp_path / "out", [
            f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={workspace['picture']}"]))


def test_a_decompression_bomb_is_a_data_problem_that_can_be_skipped(workspace):
    dataset = folder_dataset(workspace["bomb_data"], "train", ["background", "foreground"],
                             split_fractions={"train": 1.0, "val": 0.0, "test": 0.0})
    report = check_split(dataset, "train", num_classes=2, progress=False)
    assert report.bad_ids == {"painting_000"}
    assert [problem for problem in report.problems if "painting_000" in problem] == [
        f"{workspace['bomb_data']}/images/painting_000.jpg: more than "
        f"PIL.Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS} pixels, refused as a possible "
        "decompression bomb; downscale the image"]


def test_trust_checkpoint_starts_training_from_a_file_with_pickled_objects(workspace,
                                                                          tmp_path):
    overrides = [*RUN, "encoder=none", f"model.weights={workspace['pickled_ckpt']}"]
    with pytest.raises(InstantiationException, match="contains pickled objects that can run"):
        build_module(compose_config("train", tmp_path / "refused", overrides), CLASSES)
    module = build_module(compose_config("train", tmp_path / "trusted",
                                         [*overrides, "trust_checkpoint=true"]), CLASSES)
    saved = torch.load(workspace["pickled_ckpt"], weights_only=False)["state_dict"]
    for name, weight in module.net.state_dict().items():
        assert torch.equal(weight, saved[f"net.{name}"]), name
