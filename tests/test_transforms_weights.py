"""Augmentations keep masks exact (nearest, ignore padding), and automatic class weights."""

import numpy as np
import pytest

from conftest import compose_config
from fixtures import write_folder
from seglab.core.errors import ConfigError
from seglab.data.checks import SplitReport, median_frequency_weights
from seglab.data.transforms import build_transform
from seglab.engine.builders import build_datamodule, build_module


def _sample(height=20, width=30):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    mask = np.kron(rng.integers(0, 3, (height // 5, width // 5)), np.ones((5, 5), int))
    return image, mask.astype(np.int64)


def test_training_crop_pads_masks_with_ignore_and_keeps_labels():
    image, mask = _sample()
    transform = build_transform(True, (40, 40), crop=True, scale=(0.5, 2.0), hflip=0.5,
                                color_jitter=0.3, seed=0)
    for _ in range(10):
        out = transform(image=image, mask=mask)
        assert tuple(out["image"].shape) == (3, 40, 40)
        assert out["mask"].shape == (40, 40)
        assert set(np.unique(out["mask"])) <= {0, 1, 2, 255}
    small = build_transform(True, (40, 40), crop=True, seed=0)(image=image, mask=mask)
    assert (small["mask"][20:, :] == 255).all() and (small["mask"][:, 30:] == 255).all()


@pytest.mark.parametrize("sizing, size", [("resize", (16, 16)), ("pad", (32, 32))])
def test_eval_sizing_gives_the_input_size_with_exact_labels(sizing, size):
    image, mask = _sample()
    out = build_transform(False, size, eval_sizing=sizing)(image=image, mask=mask)
    assert tuple(out["image"].shape) == (3, *size) and out["mask"].shape == size
    assert set(np.unique(out["mask"])) <= {0, 1, 2, 255}
    if sizing == "pad":  # 20×30 fitted to 21×32, then padded below with ignore
        assert (out["mask"][21:] == 255).all() and (out["mask"][:21] != 255).all()


def test_median_frequency_weights_by_hand():
    report = SplitReport("train", class_pixels=np.array([900, 100, 0]),
                         present_pixels=np.array([1000, 200, 0]))
    # frequencies 0.9 and 0.5, median 0.7
    assert median_frequency_weights(report) == pytest.approx([0.7 / 0.9, 0.7 / 0.5, 0.0])


def test_auto_class_weights_reach_the_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLAB_CACHE_DIR", str(tmp_path / "cache"))
    write_folder(tmp_path / "data", count=6)
    cfg = compose_config("train", tmp_path / "run", [
        "data=folder", f"data.root={tmp_path}/data", "loss=ce", "loss.class_weights=auto",
        "data.split_fractions={train:0.5,val:0.25,test:0.25}"])
    datamodule = build_datamodule(cfg)
    expected = median_frequency_weights(datamodule.split_report("train"))
    module = build_module(cfg, datamodule.class_names, datamodule)
    assert module.loss.weight.tolist() == pytest.approx(expected)
    assert len(expected) == 2 and all(w > 0 for w in expected)


def test_wrong_length_class_weights_are_named(tmp_path):
    from seglab.runs.config import check_config
    cfg = compose_config("train", tmp_path, ["loss=ce", "loss.class_weights=[1.0,2.0]"])
    with pytest.raises(ConfigError, match=r"loss.class_weights = \[1.0, 2.0\]: expected auto or "
                                          r"a list of 4 numbers"):
        check_config(cfg)
