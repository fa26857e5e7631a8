"""Every study in conf/experiment/ composes to its recipe and trains one batch of each split on
its dataset's tiny fixture, with the pretrained weights it names served by replaced downloaders
(so the real loading path runs offline)."""

import itertools
import json
from pathlib import Path

import pytest
import segmentation_models_pytorch.encoders as smp_encoders
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torchvision.models import VGG16_Weights, vgg16
from torchvision.models import _api as torchvision_api
from torchvision.models import segmentation as tvseg

from benchmark_layouts import write_ade20k, write_camvid, write_cityscapes
from conftest import compose_config, run_cli
from fixtures import ART_COLOURS, write_bdd, write_folder, write_kitti_road, write_pets, write_voc
from seglab.engine.training import train
from seglab.models.weights import read_weights_file
from seglab.runs.config import check_config, config_dir

EXPERIMENTS = sorted(path.stem for path in (Path(config_dir()) / "experiment").glob("*.yaml"))
MISSING = "???"
COCO_R101 = tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1.url
VGG16_IMAGENET = VGG16_Weights.IMAGENET1K_V1.url
ADAM, ADAMW, SGD = "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.SGD"
PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"
POLY = "torch.optim.lr_scheduler.PolynomialLR"
EARLY_STOPPING = "lightning.pytorch.callbacks.EarlyStopping"

# What defines each study: composed key -> value, and the weights it downloads.
RECIPES = {
    "pets_models": {
        "data.name": "pets", "model.name": "unet", "encoder.name": "mobilenet_v2",
        "hydra.sweeper.params": {"model": "unet,fcn,deeplabv3,pspnet,segnet"},
        "encoder.weights": "imagenet", "model.weights": None, "model.freeze_encoder": True,
        "optimizer._target_": ADAM, "optimizer.lr": 1e-3, "scheduler.factory._target_": PLATEAU,
        "callbacks.early_stopping._target_": EARLY_STOPPING,
        "downloads": {"smp-hub/mobilenet_v2.imagenet"}},
    "pets_finetune": {
        "data.name": "pets", "model.name": "unet", "encoder.name": "mobilenet_v2",
        "hydra.sweeper.params": None, "encoder.weights": None, "stage1_checkpoint": MISSING,
        "model.freeze_encoder": False, "optimizer._target_": ADAM, "optimizer.lr": 1e-4,
        "optimizer.encoder_lr_mult": 0.1, "scheduler.factory._target_": PLATEAU,
        "callbacks.early_stopping._target_": EARLY_STOPPING, "downloads": set()},
    "voc_unet": {
        "data.name": "voc", "data.year": "2007", "data.num_classes": 21,
        "data.image_sets": {"train": "train", "val": "val", "test": "test"},
        "model.name": "unet_classic", "encoder.name": "none", "encoder.weights": None,
        "optimizer._target_": SGD, "optimizer.lr": 1e-3, "optimizer.momentum": 0.99,
        "loss._target_": "seglab.engine.losses.cross_entropy", "scheduler.factory._target_": POLY,
        "downloads": set()},
    "bdd_drivable": {
        "data.name": "bdd", "data.subset": 3000,
        "data.split_fractions": {"train": 0.7, "val": 0.2, "test": 0.1},
        "model.name": "deeplabv3plus", "encoder.name": "mit_b0", "encoder.weights": "imagenet",
        "hydra.sweeper.params": {"model": "deeplabv3plus,unet,segformer"},
        "optimizer._target_": ADAMW, "scheduler.factory._target_": POLY,
        "downloads": {"smp-hub/mit_b0.imagenet"}},
    "art_transfer": {
        "data.name": "art", "model.name": "deeplabv3", "encoder.name": "resnet101",
        "model.weights": "COCO_WITH_VOC_LABELS_V1", "model.aux_loss": None,
        "model.freeze_encoder": True, "encoder.weights": None, "optimizer._target_": SGD,
        "optimizer.lr": 1e-3, "optimizer.momentum": 0.9, "downloads": {COCO_R101}},
    "deeplabv3_coco_transfer": {  # the same recipe on whatever data= says (default synthetic)
        "data.name": "synthetic", "model.name": "deeplabv3", "encoder.name": "resnet101",
        "model.weights": "COCO_WITH_VOC_LABELS_V1", "model.aux_loss": None,
        "model.freeze_encoder": True, "optimizer._target_": SGD, "optimizer.lr": 1e-3,
        "optimizer.momentum": 0.9, "downloads": {COCO_R101}},
    "road_fcn8s": {
        "data.name": "kitti_road", "model.name": "fcn8s", "encoder.name": "vgg16",
        "encoder.weights": "imagenet", "optimizer._target_": ADAM,
        "downloads": {VGG16_IMAGENET}},
    "synthetic_models": {
        "data.name": "synthetic", "data.lengths": {"train": 4000, "val": 256, "test": 256},
        "data.input_size": [64, 64], "model.name": "unet", "encoder.name": "mobilenet_v2",
        "hydra.sweeper.params": {"model": "unet,fcn,deeplabv3,pspnet,segnet",
                                 "encoder": "mobilenet_v2,resnet18"},
        "encoder.weights": None, "model.weights": None, "optimizer._target_": ADAMW,
        "scheduler.factory._target_": POLY, "trainer.max_epochs": 3,
        "trainer.accelerator": "cpu", "logger.csv._target_":
            "lightning.pytorch.loggers.CSVLogger", "seed": 0, "downloads": set()},
    "cityscapes_deeplabv3plus": {  # MMSegmentation's DeepLabV3+ R-50-D8 512x1024 80k
        "data.name": "cityscapes", "model.name": "deeplabv3plus", "encoder.name": "resnet50",
        "encoder.weights": "imagenet", "model.encoder_output_stride": 8,
        "model.decoder_atrous_rates": [12, 24, 36], "data.input_size": [512, 1024],
        "data.scale": [0.5, 2.0], "data.hflip": 0.5, "data.batch_size": 8,
        "data.eval_sizing": None, "data.eval_mode": "whole", "optimizer._target_": SGD,
        "optimizer.lr": 0.01, "optimizer.momentum": 0.9, "optimizer.weight_decay": 0.0005,
        "scheduler.factory._target_": POLY, "scheduler.factory.power": 0.9,
        "scheduler.interval": "step", "trainer.max_epochs": -1, "trainer.max_steps": 80000,
        "trainer.check_val_every_n_epoch": None, "trainer.val_check_interval": 8000,
        "downloads": {"smp-hub/resnet50.imagenet"}},
    "ade20k_segformer": {  # MMSegmentation's SegFormer MiT-B0 512x512 160k
        "data.name": "ade20k", "model.name": "segformer", "encoder.name": "mit_b0",
        "encoder.weights": "imagenet", "data.input_size": [512, 512], "data.batch_size": 16,
        "optimizer._target_": ADAMW, "optimizer.lr": 0.0006, "optimizer.encoder_lr_mult": 0.1,
        "optimizer.weight_decay": 0.01, "scheduler.factory._target_": POLY,
        "scheduler.factory.power": 1.0, "trainer.max_steps": 160000,
        "trainer.val_check_interval": 16000, "downloads": {"smp-hub/mit_b0.imagenet"}},
    "camvid_fpn": {  # smp's examples/camvid_segmentation_multiclass.ipynb
        "data.name": "camvid", "model.name": "fpn", "encoder.name": "resnext50_32x4d",
        "encoder.weights": "imagenet", "loss._target_": "segmentation_models_pytorch.losses."
        "DiceLoss", "optimizer._target_": ADAM, "optimizer.lr": 0.0002,
        "scheduler.factory._target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "scheduler.factory.eta_min": 0.00001, "data.input_size": [320, 320],
        "data.batch_size": 32, "trainer.max_epochs": 50,
        "downloads": {"smp-hub/resnext50_32x4d.imagenet"}},
    "synthetic_backbones": {
        "data.name": "synthetic", "model.name": "upernet", "model.decoder_channels": 64,
        "encoder.name": "resnet18", "encoder.weights": None, "trainer.max_epochs": 2,
        "trainer.precision": "32-true", "seed": 0,
        "hydra.sweeper.params": {"encoder": "resnet18,convnext_tiny,efficientnet_b3,"
                                 "regnety_016,resnest50d,swin_tiny_patch4_window7_224",
                                 "seed": "0,1,2"},
        "downloads": set()},
    "synthetic_unet": {
        "data.name": "synthetic", "model.name": "unet", "encoder.name": "resnet18",
        "encoder.weights": None, "optimizer._target_": ADAMW, "seed": 0, "downloads": set()},
}

# Tensors served for torchvision URLs, built as the published files are shaped.
PUBLISHED = {
    COCO_R101: lambda: tvseg.deeplabv3_resnet101(weights=None, weights_backbone=None,
                                                 num_classes=21, aux_loss=True).state_dict(),
    VGG16_IMAGENET: lambda: vgg16(weights=None).state_dict(),
}
WRITERS = {
    "pets": write_pets, "bdd": write_bdd, "kitti_road": write_kitti_road,
    "art": lambda root: write_folder(root, colours=ART_COLOURS), "folder": write_folder,
    "cityscapes": write_cityscapes, "ade20k": write_ade20k, "camvid": write_camvid,
}
ONE_BATCH = ["data.input_size=[32,32]", "data.batch_size=2", "logger=none",
             "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
             "callbacks.model_checkpoint.save_last=false"]  # VGG16 + Adam state: 1.6 GB
# Studies that start from another study's checkpoint (given as model.weights=).
STAGE_ONE = {"pets_finetune": "pets_models"}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def downloads(tmp_path, monkeypatch) -> dict:
    """Replace smp's hub and torchvision's downloader; returns source -> served state dict."""
    served = {}

    def hub(repo_id, filename, **kwargs):
        folder = tmp_path / "hub" / repo_id
        if repo_id not in served:
            encoder = repo_id.split("/")[-1].split(".")[0]
            served[repo_id] = smp_encoders.get_encoder(encoder, weights=None).state_dict()
            folder.mkdir(parents=True)
            save_file(served[repo_id], folder / "model.safetensors")
            (folder / "config.json").write_text("{}")
        return str(folder / filename)

    def url(address, *args, **kwargs):
        if address not in PUBLISHED:
            pytest.fail(f"no state dict to serve for {address}: add it to PUBLISHED")
        served.setdefault(address, PUBLISHED[address]())
        return served[address]

    monkeypatch.setattr(smp_encoders, "hf_hub_download", hub)
    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", url)
    return served


def composed(cfg: DictConfig, key: str):
    """The value at `key`, as plain Python; MISSING for a mandatory value."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if OmegaConf.is_missing(node, leaf):
        return MISSING
    value = node[leaf]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def sweep_jobs(study: DictConfig) -> list[list[str]]:
    """The overrides of each job `seglab-train -m` runs for the study's sweeper params."""
    params = study.hydra.sweeper.params or {}
    return [list(job) for job in itertools.product(
        *[[f"{key}={value}" for value in str(values).split(",")]
          for key, values in params.items()])]


def data_overrides(study: DictConfig, root: Path) -> list[str]:
    """Write the study's dataset fixture under `root`; the overrides that make it one batch."""
    name = study.data.name
    if name == "synthetic":
        return ["data.lengths={train:4,val:2,test:2}"]
    if name == "voc":
        write_voc(root, year=study.data.year)
        lists = root / "VOCdevkit" / f"VOC{study.data.year}" / "ImageSets" / "Segmentation"
        for image_set in study.data.image_sets.values():  # e.g. VOC2007's test.txt
            if not (lists / f"{image_set}.txt").exists():
                (lists / f"{image_set}.txt").write_text((lists / "val.txt").read_text())
    else:
        WRITERS[name](root)
    overrides = [f"data.root={root}", "data.num_workers=0"]
    if study.data.get("subset"):
        overrides.append("data.subset=10")  # the whole fixture, split by the study's fractions
    return overrides


def stage_one_checkpoint(name: str, model: str, tmp_path: Path) -> Path:
    """best.ckpt of a one-epoch run of the study's first stage with the same model (a real
    epoch: fast_dev_run writes no best.ckpt)."""
    study = compose_config("train", tmp_path / "stage1", [f"experiment={STAGE_ONE[name]}"])
    cfg = compose_config("train", tmp_path / "stage1", [
        f"experiment={STAGE_ONE[name]}", f"model={model}", *ONE_BATCH, "trainer=cpu",
        "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
        *data_overrides(study, tmp_path / "stage1_data")])
    metrics, _ = train(cfg)
    assert metrics["status"] == "completed" and metrics["checkpoint"]
    return Path(metrics["checkpoint"])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_study_is_its_recipe_and_trains_one_batch(tmp_path, downloads, name):
    assert name in RECIPES, f"add what defines experiment={name} to RECIPES"
    recipe = dict(RECIPES[name])
    expected_downloads = recipe.pop("downloads")
    study = compose_config("train", tmp_path / "study", [f"experiment={name}"])
    for key, value in recipe.items():
        assert composed(study, key) == value, key

    overrides = [f"experiment={name}", *sweep_jobs(study)[0], *ONE_BATCH, "trainer=debug",
                 *data_overrides(study, tmp_path / "data")]
    if name in STAGE_ONE:
        checkpoint = stage_one_checkpoint(name, study.model.name, tmp_path)
        overrides.append(f"model.weights={checkpoint}")
        downloads.clear()
    cfg = compose_config("train", tmp_path / "run", overrides)
    if name in STAGE_ONE:  # the network starts as the stage-1 checkpoint left it
        start = instantiate(cfg.model).state_dict()
        for key, value in read_weights_file(checkpoint).items():
            assert torch.equal(start[key], value), key
    metrics, objects = train(cfg)

    assert set(downloads) == expected_downloads
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["status"] == metrics["status"] == "completed"
    assert (saved["model"], saved["encoder"], saved["data"]) == (
        study.model.name, study.encoder.name, study.data.name)
    net = objects["module"].net
    if study.model.freeze_encoder and downloads:  # frozen: still exactly the served weights
        (state,) = downloads.values()
        state = {key.removeprefix("backbone."): value for key, value in state.items()}
        for key, value in net.encoder.state_dict().items():
            assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_job_of_a_study_s_sweep_is_a_valid_pair(tmp_path, name):
    study = compose_config("train", tmp_path, [f"experiment={name}"])
    pairs = set()
    for job in sweep_jobs(study):
        cfg = compose_config("train", tmp_path, [f"experiment={name}", *job])
        check_config(cfg)  # the registry accepts the model/encoder pair
        pairs.add((cfg.model.name, cfg.encoder.name, cfg.seed))
    assert len(pairs) == len(sweep_jobs(study))


@pytest.mark.slow
def test_the_synthetic_sweep_runs_all_ten_pairs_from_one_word(tmp_path):
    result = run_cli(["seglab-train", "-m", "experiment=synthetic_models", "trainer=debug",
                      "data.lengths={train:4,val:2,test:2}", "data.input_size=[32,32]",
                      "data.batch_size=2", f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [json.loads(path.read_text()) for path in (tmp_path / "sweep").glob("*/metrics.json")]
    assert [run["status"] for run in runs] == ["completed"] * 10
    assert {(run["model"], run["encoder"]) for run in runs} == {
        (model, encoder) for model in ("unet", "fcn", "deeplabv3", "pspnet", "segnet")
        for encoder in ("mobilenet_v2", "resnet18")}
