"""The built-in synthetic dataset: deterministic, well-formed, and not solvable by colour."""

import numpy as np
import pytest
import torch

from seglab.core.errors import ConfigError
from seglab.data.datamodule import SegmentationDataModule
from seglab.data.synthetic import SyntheticShapes, class_names_for, draw_scene
from seglab.engine.metrics import segmentation_scores

LENGTHS = {"train": 64, "val": 32, "test": 32}


def test_scene_depends_only_on_seed_split_and_index():
    image, mask = draw_scene(seed=3, split="train", index=5)
    again_image, again_mask = draw_scene(seed=3, split="train", index=5)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert not np.array_equal(image, draw_scene(seed=4, split="train", index=5)[0])
    assert not np.array_equal(image, draw_scene(seed=3, split="val", index=5)[0])
    assert not np.array_equal(image, draw_scene(seed=3, split="train", index=6)[0])


def test_samples_follow_the_dataset_contract():
    dataset = SyntheticShapes("val", LENGTHS, image_size=48, num_classes=6)
    assert len(dataset) == 32
    sample = dataset.load(0)
    assert sample["image"].shape == (48, 48, 3) and sample["image"].dtype == np.uint8
    assert sample["mask"].shape == (48, 48) and sample["mask"].dtype == np.int64
    assert sample["id"] == "val_000000"
    labels = np.unique(np.concatenate([dataset.load(i)["mask"].ravel() for i in range(32)]))
    assert set(labels) == set(range(6))
    assert dataset.class_names == ["background", "disc", "box", "triangle", "ring", "cross"]


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="data.num_classes = 9: the synthetic scenes have 2 to 6"):
        class_names_for(9)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        SyntheticShapes("dev", LENGTHS)
    with pytest.raises(ConfigError, match="positive number of scenes for the test split"):
        SyntheticShapes("test", {"train": 4})
    with pytest.raises(ConfigError, match="data.lengths = 'train:32': expected the number"):
        SyntheticShapes("train", "train:32")


def test_a_colour_lookup_cannot_solve_it():
    """The best per-colour-bin majority class, fitted on train, scores poorly on val."""
    bins = 8
    train = [draw_scene(0, "train", i) for i in range(300)]
    val = [draw_scene(0, "val", i) for i in range(100)]

    def codes(image):
        quantised = image.astype(np.int64) * bins // 256
        return (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]

    counts = np.zeros((bins**3, 4), dtype=np.int64)
    for image, mask in train:
        np.add.at(counts, (codes(image).ravel(), mask.ravel()), 1)
    lookup = counts.argmax(1)
    confmat = np.zeros((4, 4), dtype=np.int64)
    for image, mask in val:
        np.add.at(confmat, (mask.ravel(), lookup[codes(image).ravel()]), 1)
    scores = segmentation_scores(torch.from_numpy(confmat), class_names_for(4))
    assert scores["mIoU"] < 0.4
    assert scores["iou_triangle"] < 0.2


def test_datamodule_serves_normalised_tensors_and_class_names():
    from functools import partial
    dm = SegmentationDataModule(
        name="synthetic", num_classes=4, input_size=[32, 32], batch_size=4, hflip=0.5,
        dataset=partial(SyntheticShapes, lengths=LENGTHS, image_size=32, num_classes=4))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["mask"].shape == (4, 32, 32) and str(batch["mask"].dtype) == "torch.int64"
    assert abs(float(batch["image"].mean())) < 1.5
    assert dm.class_names == ["background", "disc", "box", "triangle"]
    val_batch = next(iter(dm.val_dataloader()))
    np.testing.assert_array_equal(val_batch["mask"][0].numpy(), dm.split("val").load(0)["mask"])


def test_class_names_must_match_num_classes():
    from functools import partial
    dm = SegmentationDataModule(
        name="synthetic", num_classes=3, input_size=[32, 32], class_names=["a", "b"],
        dataset=partial(SyntheticShapes, lengths=LENGTHS, image_size=32, num_classes=3))
    with pytest.raises(ValueError, match=r"has 2 names .* but data.num_classes is 3"):
        _ = dm.class_names


def test_the_scene_cache_returns_the_scenes_drawing_gives():
    dataset = SyntheticShapes("train", LENGTHS, image_size=32, num_classes=5, seed=7)
    first = [dataset.load(i) for i in range(5)]
    assert len(dataset.scenes) == 5
    for index, sample in enumerate(first):
        cached = dataset.load(index)
        image, mask = draw_scene(7, "train", index, image_size=32, num_classes=5)
        for got in (sample, cached):
            np.testing.assert_array_equal(got["image"], image)
            np.testing.assert_array_equal(got["mask"], mask)
            assert got["mask"].dtype == np.int64
    first[0]["image"][:] = 0  # a consumer writing into its sample leaves the cache intact
    np.testing.assert_array_equal(dataset.load(0)["image"], draw_scene(
        7, "train", 0, image_size=32, num_classes=5)[0])


def test_a_split_too_large_for_memory_is_drawn_each_time(monkeypatch):
    monkeypatch.setattr("seglab.data.synthetic.CACHE_LIMIT_BYTES", 1000)
    dataset = SyntheticShapes("train", LENGTHS, image_size=32)
    dataset.load(0)
    assert dataset.scenes is None


def test_uint8_batches_normalised_on_the_device_equal_the_cpu_path():
    from functools import partial
    batches = {}
    for on_device in (False, True):
        dm = SegmentationDataModule(
            name="synthetic", num_classes=4, input_size=[32, 32], batch_size=4, hflip=0.5,
            vflip=0.5, normalize_on_device=on_device,
            dataset=partial(SyntheticShapes, lengths=LENGTHS, image_size=32, num_classes=4))
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["image"].dtype == (torch.uint8 if on_device else torch.float32)
        batches[on_device] = dm.on_after_batch_transfer(batch, 0)
    assert batches[True]["image"].dtype == torch.float32
    torch.testing.assert_close(batches[True]["image"], batches[False]["image"],
                               atol=1e-5, rtol=0)  # float32 rounding of the two formulas
    assert torch.equal(batches[True]["mask"], batches[False]["mask"])
