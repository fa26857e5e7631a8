"""Published torchvision weights without a training run: predict and evaluate them with
their own classes, resize and normalisation (weights saved by the test into the hub cache)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models.segmentation import (
    LRASPP_MobileNet_V3_Large_Weights,
    lraspp_mobilenet_v3_large,
)

from conftest import compose_config
from fixtures import write_voc
from seglab.core.errors import ConfigError
from seglab.engine.metrics import iou_per_class
from seglab.inference.evaluation import evaluate
from seglab.inference.prediction import predict

PUBLISHED = LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
WEIGHTS = ["model=lraspp", "encoder=mobilenet_v3_large", "model.weights=COCO_WITH_VOC_LABELS_V1"]


@pytest.fixture
def published(tmp_path, monkeypatch) -> dict:
    """LR-ASPP's COCO-with-VOC-labels state dict (random values) where torch hub keeps it."""
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    state = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                      num_classes=21).state_dict()
    absent = [label for label in range(21) if label not in (0, 1, 5, 15, 20)]
    state["classifier.low_classifier.bias"][absent] = -100.0  # predict the fixture's classes
    torch.save(state, cache / PUBLISHED.url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return state


def test_predict_with_published_weights_and_no_training_run(published, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "painting.jpg")
    summary, objects = predict(compose_config("predict", tmp_path / "out", [
        "predict.num_workers=0", *WEIGHTS, f"input={tmp_path / 'painting.jpg'}"]))
    card = objects["card"]
    assert card.class_names[0] == "background" and card.class_names[15] == "person"
    assert len(card.class_names) == 21 and card.resize == 520
    assert card.mean == [0.485, 0.456, 0.406] and card.std == [0.229, 0.224, 0.225]
    assert card.palette[15] == [192, 128, 128]  # VOC's colour for person
    loaded = objects["net"].model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in published.items())
    assert summary["images"] == 1
    assert Image.open(tmp_path / "out" / "masks" / "painting.png").size == (60, 40)


def torchvision_reference_miou(state: dict, voc_root: Path, ids: list[str]) -> float:
    """mIoU as torchvision's reference evaluation computes it: the image's shorter side
    resized to 520 (mask nearest), the weights' normalisation, one matrix over all images."""
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    model.load_state_dict(state)
    model.eval()
    base = voc_root / "VOCdevkit" / "VOC2012"
    mean, std = torch.tensor(PUBLISHED.transforms().mean), torch.tensor(PUBLISHED.transforms().std)
    confusion = torch.zeros(21, 21, dtype=torch.int64)
    for sample in ids:
        image = torch.from_numpy(np.array(Image.open(base / "JPEGImages" / f"{sample}.jpg")
                                            .convert("RGB"))).permute(2, 0, 1).float() / 255
        mask = torch.from_numpy(np.array(Image.open(base / "SegmentationClass" /
                                                      f"{sample}.png"))).long()
        height, width = image.shape[1:]
        size = (520, int(520 * width / height)) if height <= width else \
            (int(520 * height / width), 520)
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
        with torch.no_grad():
            prediction = model((image - mean[:, None, None]) / std[:, None, None])["out"]
        prediction = prediction.argmax(1)[0]
        keep = mask != 255
        confusion += torch.bincount(mask[keep] * 21 + prediction[keep],
                                    minlength=441).reshape(21, 21)
    return float(iou_per_class(confusion).nanmean())


def test_eval_of_published_weights_matches_torchvision_reference(published, tmp_path):
    ids = write_voc(tmp_path / "voc")
    metrics, objects = evaluate(compose_config("eval", tmp_path / "eval", [
        *WEIGHTS, "data=voc", f"data.root={tmp_path / 'voc'}", "data.num_workers=0",
        "trainer.precision=32-true", "trainer.accelerator=cpu", "logger=none",
        "trainer.enable_progress_bar=false"]))
    assert metrics["status"] == "completed" and metrics["weights"] == str(PUBLISHED)
    batch = next(iter(objects["datamodule"].test_dataloader()))
    assert min(batch["image"].shape[-2:]) == 520 and batch["image"].shape[0] == 1
    reference = torchvision_reference_miou(published, tmp_path / "voc", ids[len(ids) // 2:])
    assert metrics["test/mIoU"] == pytest.approx(reference, abs=1e-4)
    assert reference > 0.01  # the fixture classes are predicted: a mismatch would show
    assert (tmp_path / "eval" / "confusion_matrix.csv").is_file()


def test_published_weights_need_their_number_of_classes(published, tmp_path):
    with pytest.raises(ConfigError, match=r"model.weights=COCO_WITH_VOC_LABELS_V1 predicts 21 "
                       r"classes .* data=synthetic has data.num_classes=4; evaluate on data=voc"):
        evaluate(compose_config("eval", tmp_path / "eval", WEIGHTS))


def test_published_weights_offline_name_the_file_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    import torchvision.models._api as torchvision_api

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", offline)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(Exception, match=r"could not fetch .*lraspp_mobilenet_v3_large-d234d4ea"
                       r".pth .*hub/checkpoints"):
        predict(compose_config("predict", tmp_path / "out",
                               [*WEIGHTS, f"input={tmp_path / 'a.png'}"]))
