"""COCO read from its official layout into semantic masks exactly as torchvision's segmentation
references make them: polygons and crowd RLEs decoded by pycocotools, overlaps ignored, VOC
categories remapped, sparsely annotated training images dropped."""

import numpy as np
import pytest
from PIL import Image

import seglab.data.coco as coco_module
from conftest import compose_config
from fixtures import COCO_SIZE, write_coco
from seglab.data import build_dataset
from seglab.data.files import DataError
from seglab.data.voc import CLASSES as VOC_CLASSES
from seglab.engine.builders import build_datamodule

ALL_CLASSES = ["background", "person", "car", "stop sign", "dog"]  # category ids 1, 3, 13, 18


def _ids(dataset) -> list[str]:
    return [pair.id for pair in dataset.pairs]


def _masks(dataset) -> dict[str, np.ndarray]:
    samples = [dataset.load(index) for index in range(len(dataset))]
    for sample in samples:
        assert sample["image"].shape == (*COCO_SIZE, 3) and sample["image"].dtype == np.uint8
        assert sample["mask"].dtype == np.int64
    return {sample["id"]: sample["mask"] for sample in samples}


def _expected(person: int, car: int, dog: int, stop_sign: int | None) -> dict[str, np.ndarray]:
    """The fixture's masks, written by hand: a polygon [x0,y0, x1,y0, x1,y1, x0,y1] fills rows
    y0:y1 and columns x0:x1; 255 where two kept instances overlap."""
    masks = {stem: np.zeros(COCO_SIZE, dtype=np.int64) for stem in ("9", "25", "30", "139")}
    nine = masks["9"]
    nine[2:8, 2:10] = person
    nine[6:12, 8:14] = person
    nine[2:6, 16:22] = dog  # one annotation, two polygons
    nine[14:18, 16:22] = dog
    if stop_sign is not None:
        nine[10:16, 4:12] = stop_sign
        nine[10:12, 8:12] = 255  # stop sign over the second person
        masks["30"][0:4, 0:3] = stop_sign
    nine[6:8, 8:10] = 255  # the two persons overlap
    masks["25"][12:18, 3:9] = person  # crowd, uncompressed RLE
    masks["25"][2:10, 12:20] = car
    masks["139"][4:10, 4:12] = dog  # crowd, compressed RLE
    masks["139"][16:18, 18:20] = car
    return {f"{int(stem):012d}": mask for stem, mask in masks.items()}


def test_all_categories_masks_pixel_by_pixel(tmp_path):
    write_coco(tmp_path)
    train_set = build_dataset("coco", root=str(tmp_path), split="train", min_annotated_area=0)
    val = build_dataset("coco", root=str(tmp_path), split="val")
    test = build_dataset("coco", root=str(tmp_path), split="test")
    assert train_set.class_names == ALL_CLASSES == val.class_names
    assert _ids(train_set) == ["000000000009", "000000000025", "000000000030"]
    assert _ids(val) == _ids(test) == ["000000000139", "000000000285"]
    expected = {**_expected(person=1, car=2, dog=4, stop_sign=3),
                "000000000285": np.zeros(COCO_SIZE, dtype=np.int64)}
    for split in (train_set, val, test):
        for stem, mask in _masks(split).items():
            assert np.array_equal(mask, expected[stem]), stem
    assert train_set.problems == [f"{tmp_path}/train2017/000000000042.jpg: listed in "
                                  "instances_train2017.json but missing"]


def test_voc_categories_follow_torchvision(tmp_path):
    write_coco(tmp_path)
    train_set = build_dataset("coco", root=str(tmp_path), split="train", categories="voc",
                              min_annotated_area=0)
    val = build_dataset("coco", root=str(tmp_path), split="val", categories="voc")
    assert train_set.class_names == VOC_CLASSES and len(VOC_CLASSES) == 21
    # COCO id 1 person -> 15, 3 car -> 7, 18 dog -> 12; 13 stop sign is dropped, so image 30
    # (nothing else) leaves train and the stop sign no longer makes the person overlap ignore
    assert _ids(train_set) == ["000000000009", "000000000025"]
    expected = _expected(person=15, car=7, dog=12, stop_sign=None)
    for split in (train_set, val):
        for stem, mask in _masks(split).items():
            assert np.array_equal(mask, expected.get(stem, np.zeros(COCO_SIZE))), stem


@pytest.mark.parametrize("min_area, kept", [
    (1000, []),  # the default: every tiny image is too sparsely annotated
    (100, ["000000000009"]),  # image 25's area is exactly 100: more than 100 is needed
    (99, ["000000000009", "000000000025"]),
    (0, ["000000000009", "000000000025", "000000000030"]),  # 49 has no annotations at all
])
def test_min_annotated_area_drops_training_images_only(tmp_path, min_area, kept):
    write_coco(tmp_path)
    options = {} if min_area == 1000 else {"min_annotated_area": min_area}
    train_set = build_dataset("coco", root=str(tmp_path), split="train", **options)
    val = build_dataset("coco", root=str(tmp_path), split="val", **options)
    assert _ids(train_set) == kept
    assert _ids(val) == ["000000000139", "000000000285"]
    # the missing file is a problem only where the image would be used (area 480)
    assert len(train_set.problems) == (min_area < 480)


def test_image_sets_map_seglab_splits_to_coco_parts(tmp_path):
    write_coco(tmp_path)
    val = build_dataset("coco", root=str(tmp_path), split="val",
                        image_sets={"train": "val2017", "val": "train2017", "test": "val2017"})
    assert _ids(val) == ["000000000009", "000000000025", "000000000030", "000000000049"]
    assert len(val.problems) == 1  # 42, listed but missing; val keeps every image


def test_reading_is_quiet_and_masks_are_decoded_lazily(tmp_path, capsys, monkeypatch):
    write_coco(tmp_path)
    decoded = []
    monkeypatch.setattr(coco_module, "semantic_mask",
                        lambda *args: decoded.append(args) or np.zeros(COCO_SIZE, np.int64))
    dataset = build_dataset("coco", root=str(tmp_path), split="val")
    assert capsys.readouterr().out == "" and decoded == []
    dataset.load(1)
    assert len(decoded) == 1


def test_missing_or_malformed_files_name_themselves(tmp_path):
    with pytest.raises(DataError, match=r"coco: .*annotations/instances_train2017.json not found"
                                        r"\. Expected layout under data.root: annotations/"
                                        r".*Download from https://cocodataset.org/#download"):
        build_dataset("coco", root=str(tmp_path), split="train")
    write_coco(tmp_path)
    (tmp_path / "val2017").rename(tmp_path / "moved")
    with pytest.raises(DataError, match=r"coco: .*/val2017 not found"):
        build_dataset("coco", root=str(tmp_path), split="val")
    (tmp_path / "annotations/instances_train2017.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"instances_train2017.json: not a COCO annotation file"):
        build_dataset("coco", root=str(tmp_path), split="train")
    with pytest.raises(DataError, match=r"data.categories must be one of all, voc, got 'vco'"):
        build_dataset("coco", root=str(tmp_path), split="train", categories="vco")


def test_image_size_must_match_the_annotations(tmp_path):
    write_coco(tmp_path)
    Image.new("RGB", (10, 10)).save(tmp_path / "val2017/000000000285.jpg")
    dataset = build_dataset("coco", root=str(tmp_path), split="val")
    with pytest.raises(DataError, match=r"000000000285.jpg: image is 10×10 but "
                                        r"instances_val2017.json gives it 20×24"):
        dataset.load(1)


SMALL = ["data=coco", "data.input_size=[32,32]", "data.batch_size=2", "data.num_workers=0",
         "data.min_annotated_area=0", "logger=none"]


def test_config_wiring_data_check_and_skip(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))
    write_coco(tmp_path / "coco")
    root = f"data.root={tmp_path}/coco"
    wrong = build_datamodule(compose_config("train", tmp_path / "wrong",
                                            [*SMALL, root, "data.categories=voc"]))
    with pytest.raises(DataError, match=r"data.categories=voc gives 21 classes \(background \+ "
                                        r"20 categories\) but data.num_classes is 81; set "
                                        r"data.num_classes=21"):
        wrong.split("val")
    image = tmp_path / "coco/val2017/000000000285.jpg"
    image.write_bytes(image.read_bytes()[:100])  # truncated: skipped in val and test alike
    datamodule = build_datamodule(compose_config("train", tmp_path / "run", [
        *SMALL, root, "data.categories=voc", "data.num_classes=21", "data.on_error=skip"]))
    assert datamodule.class_names == VOC_CLASSES and datamodule.reads_files
    reports = datamodule.check(progress=False)
    problems = [problem for report in reports for problem in report.problems]
    assert len(problems) == 2
    assert problems[0].endswith("000000000042.jpg: listed in instances_train2017.json but missing")
    assert "000000000285.jpg: unreadable or truncated" in problems[1]
    assert set(datamodule.skipped) == {"000000000285"}
    assert [len(datamodule.split(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    assert reports[0].class_pixels[[7, 12, 15]].tolist() == [64, 48, 36 + 48 + 36 - 4 - 4]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert set(batch["mask"].unique().tolist()) <= {0, 7, 12, 15, 255}
