"""The console scripts as a user runs them: outputs, sweeps, and one-line errors."""

import json

import pytest
import yaml

from conftest import TINY, run_cli
from test_train import CONTRACT_KEYS

pytestmark = pytest.mark.slow


def test_train_cli_writes_the_contract(tmp_path):
    with_summary = [item for item in TINY if "model_summary" not in item]
    result = run_cli(["seglab-train", *with_summary, f"hydra.run.dir={tmp_path}/run"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "Tip:" not in output  # Lightning's promotional lines are silenced
    assert "Total FLOPs: 98.3 M" in output  # the summary runs a real example input
    log = (tmp_path / "run" / "train.log").read_text()  # Lightning's lines reach the run log
    assert "Seed set to 0" in log and "`Trainer.fit` stopped" in log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert CONTRACT_KEYS <= set(metrics)
    assert metrics["status"] == "completed"
    assert "per-class IoU" in result.stdout and f"run folder: {tmp_path}/run" in result.stdout
    low, high = metrics["test/mIoU_ci95"]
    assert f"test mIoU {metrics['test/mIoU']:.4f}, 95% interval [{low:.4f}, {high:.4f}] over " \
           "16 test images" in result.stdout.splitlines()
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "curves.png",
                 "predictions.png", "metrics.csv", "train.log", ".hydra/config.yaml"):
        assert (tmp_path / "run" / name).is_file(), name


def test_multirun_makes_one_folder_per_run(tmp_path):
    result = run_cli(["seglab-train", "-m", "optimizer=adam,sgd", "trainer=debug", *TINY[:3],
                      f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(path.parent for path in (tmp_path / "sweep").glob("*/metrics.json"))
    assert [path.name for path in runs] == ["0", "1"]
    overrides = [yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) for run in runs]
    assert ["optimizer=adam" in o for o in overrides] == [True, False]
    assert ["optimizer=sgd" in o for o in overrides] == [False, True]


@pytest.mark.parametrize("args, expected", [
    (["model=unett"], "error: unknown model 'unett' in 'model=unett'; "
                      "valid choices for model: deeplabv3, deeplabv3plus, dpt, fcn, fcn8s, fpn, "),
    (["encoder=vgg99"], "valid choices for encoder: convnext_tiny, efficientnet-b0, "),
    (["-m", "optimizer=adam,sgdd"], "error: unknown optimizer 'sgdd' in 'optimizer=adam,sgdd'"),
    (["data.batch_size=abc"], "error: config key data.batch_size = 'abc' (str): "
                              "expected a positive integer"),
    (["model=fcn8s", "encoder=resnet18"], "error: model 'fcn8s' does not support encoder "
                                          "'resnet18': it is built on vgg16 only; encoders "
                                          "that work: vgg16; models that take resnet18: unet, "),
    (["model=upernet", "encoder=timm", "encoder.name=convnxt_tiny"],
     "error: encoder.name 'convnxt_tiny' is not a timm model; closest timm names: convnext_tiny"),
])
def test_bad_train_input_is_one_clear_line(tmp_path, args, expected):
    result = run_cli(["seglab-train", *TINY, *args, f"hydra.run.dir={tmp_path}/run",
                      f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unknown_key_is_named_without_a_traceback(tmp_path):
    result = run_cli(["seglab-train", "nonexistent_key=1", f"hydra.run.dir={tmp_path}/run"],
                     cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not override 'nonexistent_key'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_eval_needs_a_checkpoint(tmp_path):
    result = run_cli(["seglab-eval", f"hydra.run.dir={tmp_path}/eval"], cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: seglab-eval needs ckpt_path=<run>/checkpoints/best.ckpt, or published weights "
        "and a dataset, such as model=deeplabv3 encoder=resnet50 "
        "model.weights=COCO_WITH_VOC_LABELS_V1 data=voc data.root=<folder>")


def test_eval_refuses_missing_and_foreign_checkpoints(tmp_path):
    import torch
    missing = run_cli(["seglab-eval", f"ckpt_path={tmp_path}/nope.ckpt",
                       f"hydra.run.dir={tmp_path}/eval1"], cwd=tmp_path)
    assert missing.returncode == 1
    assert f"ckpt_path: no checkpoint file at {tmp_path}/nope.ckpt" in missing.stderr
    foreign = tmp_path / "foreign" / "checkpoints" / "best.ckpt"
    foreign.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    before = foreign.read_bytes()
    result = run_cli(["seglab-eval", f"ckpt_path={foreign}", f"hydra.run.dir={tmp_path}/eval2"],
                     cwd=tmp_path)
    assert result.returncode == 1
    assert "was not written by seglab-train" in result.stderr
    assert "Traceback" not in result.stderr
    assert foreign.read_bytes() == before
    assert json.loads((tmp_path / "eval2" / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("model", ["unet_classic", "lraspp"])
def test_a_single_encoder_model_trains_with_its_name_alone(tmp_path, model):
    result = run_cli(["seglab-train", f"model={model}", "trainer=debug", *TINY[:3],
                      "model.base_channels=8" if model == "unet_classic" else "seed=0",
                      f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (saved["model"], saved["status"]) == (model, "completed")


def test_seed_models_fast_dev_run_on_mobilenet_v2(tmp_path):
    models = ["unet", "fcn", "deeplabv3", "pspnet", "segnet"]
    result = run_cli(["seglab-train", "-m", f"model={','.join(models)}", "encoder=mobilenet_v2",
                      "trainer=debug", *TINY[:3], f"hydra.sweep.dir={tmp_path}/sweep"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = [json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text())
            for i in range(len(models))]
    assert [(run["model"], run["encoder"], run["status"]) for run in runs] == [
        (model, "mobilenet_v2", "completed") for model in models]
    assert all(run["params"] > 0 and run["gflops"] > 0 for run in runs)
