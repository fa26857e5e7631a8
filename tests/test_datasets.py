"""Each dataset read from its official layout: splits, shapes, label values as published, and
masks equal to torchvision's own readers for the same files."""

import io

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import OxfordIIITPet, VOCSegmentation

from fixtures import ART_COLOURS, write_bdd, write_folder, write_kitti_road, write_pets, write_voc
from seglab.data import build_dataset
from seglab.data.files import DataError, pair_by_stem, read_image


def _contract(sample):
    assert sample["image"].dtype == np.uint8 and sample["image"].ndim == 3
    assert sample["image"].shape[2] == 3
    assert sample["mask"].dtype == np.int64
    assert sample["mask"].shape == sample["image"].shape[:2]
    assert isinstance(sample["id"], str)


def test_voc_matches_torchvision_pixel_for_pixel(tmp_path):
    ids = write_voc(tmp_path)
    train = build_dataset("voc", root=str(tmp_path), split="train")
    val = build_dataset("voc", root=str(tmp_path), split="val")
    test = build_dataset("voc", root=str(tmp_path), split="test")
    assert (len(train), len(val), len(test)) == (4, 4, 4)
    assert [p.id for p in val.pairs] == ids[4:] == [p.id for p in test.pairs]
    reference = VOCSegmentation(str(tmp_path), year="2012", image_set="train")
    for index in range(len(train)):
        sample = train[index]
        _contract(sample)
        image, mask = reference[index]
        np.testing.assert_array_equal(sample["mask"], np.asarray(mask))
        np.testing.assert_array_equal(sample["image"], np.asarray(image))
    values = set(np.unique(np.concatenate([train[i]["mask"].ravel() for i in range(4)])))
    assert values == {0, 1, 5, 15, 20, 255}
    assert len(train.class_names) == 21 and train.class_names[15] == "person"


def test_pets_trimaps_match_torchvision_in_both_modes(tmp_path):
    write_pets(tmp_path)
    reference = OxfordIIITPet(str(tmp_path), split="test", target_types="segmentation")
    test = build_dataset("pets", root=str(tmp_path), split="test")
    assert len(test) == 4 and test.class_names == ["background", "pet", "border"]
    for index in range(len(test)):
        _contract(test[index])
        trimap = np.asarray(reference[index][1])
        expected = np.select([trimap == 1, trimap == 2, trimap == 3], [1, 0, 2])
        np.testing.assert_array_equal(test[index]["mask"], expected)
    as_pet = build_dataset("pets", root=str(tmp_path), split="test", mode="binary")
    ignored = build_dataset("pets", root=str(tmp_path / "oxford-iiit-pet"), split="test",
                            mode="binary", border="ignore")
    trimap = np.asarray(reference[0][1])
    np.testing.assert_array_equal(as_pet[0]["mask"], np.where(trimap == 2, 0, 1))
    np.testing.assert_array_equal(ignored[0]["mask"],
                                  np.select([trimap == 1, trimap == 2], [1, 0], 255))


def test_pets_train_and_val_split_trainval(tmp_path):
    write_pets(tmp_path)
    train = build_dataset("pets", root=str(tmp_path), split="train", val_fraction=0.2, seed=3)
    val = build_dataset("pets", root=str(tmp_path), split="val", val_fraction=0.2, seed=3)
    assert (len(train), len(val)) == (8, 2)
    assert not {p.id for p in train.pairs} & {p.id for p in val.pairs}
    again = build_dataset("pets", root=str(tmp_path), split="val", val_fraction=0.2, seed=3)
    assert [p.id for p in again.pairs] == [p.id for p in val.pairs]


def test_bdd_official_parts_and_seeded_subset(tmp_path):
    write_bdd(tmp_path)
    train = build_dataset("bdd", root=str(tmp_path), split="train")
    assert len(train) == 7 and train.class_names == ["direct", "alternative", "background"]
    _contract(train[0])
    assert set(np.unique(train[0]["mask"])) <= {0, 1, 2}
    fractions = {"train": 0.625, "val": 0.25, "test": 0.125}
    parts = [build_dataset("bdd", root=str(tmp_path), split=split, subset=8,
                           split_fractions=fractions, seed=5) for split in ("train", "val", "test")]
    assert [len(part) for part in parts] == [5, 2, 1]
    ids = [p.id for part in parts for p in part.pairs]
    assert len(set(ids)) == 8


def test_kitti_road_colours(tmp_path):
    expected = write_kitti_road(tmp_path)
    splits = [build_dataset("kitti_road", root=str(tmp_path), split=split)
              for split in ("train", "val", "test")]
    assert sum(len(split) for split in splits) == 8  # lane masks are not road masks
    for split in splits:
        for index in range(len(split)):
            sample = split[index]
            _contract(sample)
            np.testing.assert_array_equal(sample["mask"], expected[sample["id"]])


def test_art_colour_masks_and_presplit_folders(tmp_path):
    expected = write_folder(tmp_path / "art", colours=ART_COLOURS)
    names = ["background", "person", "animal", "building", "vegetation", "sky", "water"]
    train = build_dataset("art", root=str(tmp_path / "art"), split="train", class_names=names,
                          colours=ART_COLOURS)
    assert len(train) == 7
    np.testing.assert_array_equal(train[0]["mask"], expected[train[0]["id"]])
    presplit = tmp_path / "presplit"
    for kind in ("images", "masks"):
        for split in ("train", "val"):
            (presplit / kind / split).mkdir(parents=True)
    write_folder(tmp_path / "flat", count=3)
    for i, stem in enumerate(sorted(p.stem for p in (tmp_path / "flat/images").iterdir())):
        split = "train" if i < 2 else "val"
        flat = tmp_path / "flat"
        (flat / "images" / f"{stem}.jpg").rename(presplit / "images" / split / f"{stem}.jpg")
        (flat / "masks" / f"{stem}.png").rename(presplit / "masks" / split / f"{stem}.png")
    folder = build_dataset("folder", root=str(presplit), split="val", class_names=["a", "b"])
    assert [p.id for p in folder.pairs] == ["painting_002"]


def test_unknown_colour_names_the_file(tmp_path):
    write_folder(tmp_path, count=2, colours=ART_COLOURS)
    dataset = build_dataset("art", root=str(tmp_path), split="train", class_names=list("abcdefg"),
                            colours=ART_COLOURS[:6] + [[1, 2, 3]],
                            split_fractions={"train": 1.0})
    with pytest.raises(DataError, match=r"painting_00\d.png: mask colour\(s\) \(0, 0, 205\) "
                                        r"are not class colours"):
        for index in range(len(dataset)):
            dataset.load(index)


def test_missing_data_names_the_layout_and_the_download_page(tmp_path):
    with pytest.raises(DataError, match=r"voc: .*VOCdevkit/VOC2012/ImageSets/Segmentation/"
                                        r"train.txt not found.*host.robots.ox.ac.uk"):
        build_dataset("voc", root=str(tmp_path), split="train")
    with pytest.raises(DataError, match=r"bdd: .*bdd100k/images/100k/train not found"):
        build_dataset("bdd", root=str(tmp_path), split="train")
    with pytest.raises(ValueError, match="unknown dataset 'mapillary'"):
        build_dataset("mapillary", root=str(tmp_path), split="train")


def test_pairing_is_by_stem_never_by_order(tmp_path):
    images = [tmp_path / name for name in ("b.jpg", "a.jpg", "c.jpg", "a.png")]
    masks = {"a": tmp_path / "a.png", "b": tmp_path / "b.png", "z": tmp_path / "z.png"}
    pairs, problems = pair_by_stem(images, masks)
    assert [(p.id, p.mask.name) for p in pairs] == [("b", "b.png"), ("a", "a.png")]
    assert problems == [f"{tmp_path}/c.jpg: no mask with stem 'c'",
                        f"{tmp_path}/a.png: duplicate stem 'a' (also {tmp_path}/a.jpg)",
                        f"{tmp_path}/z.png: no image with stem 'z'"]


def test_odd_but_valid_images_are_read_as_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.jpg")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.jpg", format="PNG")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    for name in ("cmyk.jpg", "gray.jpg", "rgba.jpg", "palette.png"):
        image = read_image(tmp_path / name)
        assert image.shape == (20, 30, 3) and image.dtype == np.uint8, name
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.jpg"), rgb)


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :5] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", exif=exif, quality=100)
    (tmp_path / "rotated.jpg").write_bytes(buffer.getvalue())
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (30, 20, 3)
    assert image[:5].mean() > 200 and image[-5:].mean() < 50  # the band is now on top


def test_download_uses_torchvision_and_fails_clearly_offline(tmp_path, monkeypatch):
    import seglab.data.pets as pets_module
    import seglab.data.voc as voc_module

    calls = []

    def fake_voc(root, year, image_set, download):
        calls.append((root, year, image_set, download))
        write_voc(tmp_path / "voc")  # what the real downloader extracts

    monkeypatch.setattr(voc_module, "VOCSegmentation", fake_voc)
    dataset = build_dataset("voc", root=str(tmp_path / "voc"), split="train", download=True)
    assert calls == [(str(tmp_path / "voc"), "2012", "train", True)] and len(dataset) == 4

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(pets_module, "OxfordIIITPet", offline)
    with pytest.raises(DataError, match=r"could not download Oxford-IIIT Pet into .*pets "
                                        r"\(OSError: .*name resolution\)"):
        build_dataset("pets", root=str(tmp_path / "pets"), split="train", download=True)
