"""Metrics on hand-computed confusion matrices, through the same path training uses."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from seglab.engine.metrics import (
    ConfusionMatrix,
    confusion_counts,
    dice_per_class,
    iou_per_class,
    per_image_counts,
    pixel_accuracy,
    predicted_classes,
    segmentation_scores,
)
from seglab.engine.per_image import PerImageScores


def test_two_class_matrix_by_hand():
    # rows = target, columns = prediction
    confmat = torch.tensor([[3, 1], [2, 4]])
    assert iou_per_class(confmat).tolist() == pytest.approx([3 / 6, 4 / 7])
    assert dice_per_class(confmat).tolist() == pytest.approx([6 / 9, 8 / 11])
    assert pixel_accuracy(confmat) == pytest.approx(0.7)
    scores = segmentation_scores(confmat, ["bg", "fg"])
    assert scores["mIoU"] == pytest.approx((0.5 + 4 / 7) / 2)
    assert scores["dice"] == pytest.approx((6 / 9 + 8 / 11) / 2)
    assert scores["iou_bg"] == pytest.approx(0.5)


def test_class_absent_from_target_and_prediction_is_left_out_of_the_mean():
    confmat = torch.tensor([[5, 1, 0], [1, 3, 0], [0, 0, 0]])
    ious = iou_per_class(confmat)
    assert math.isnan(ious[2])
    scores = segmentation_scores(confmat, ["a", "b", "c"])
    assert scores["mIoU"] == pytest.approx((5 / 7 + 3 / 5) / 2)
    assert math.isnan(scores["iou_c"])


def test_class_predicted_but_never_present_scores_zero():
    confmat = torch.tensor([[4, 2], [0, 0]])
    assert iou_per_class(confmat).tolist() == pytest.approx([4 / 6, 0.0])


def test_ignore_index_pixels_are_not_counted():
    target = torch.tensor([[0, 0, 1, 255], [1, 1, 255, 2]])
    prediction = torch.tensor([[0, 1, 1, 2], [1, 0, 0, 2]])
    matrix = ConfusionMatrix(num_classes=3, ignore_index=255)
    matrix.update(prediction[None], target[None])
    confmat = matrix.compute()
    assert confmat.sum() == 6
    assert confmat.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    scores = segmentation_scores(confmat, ["a", "b", "c"])
    assert scores["pixel_acc"] == pytest.approx(4 / 6)
    assert scores["iou_a"] == pytest.approx(1 / 3)
    assert scores["iou_b"] == pytest.approx(2 / 4)
    assert scores["iou_c"] == pytest.approx(1.0)


def test_per_image_counts_by_hand_leave_ignored_pixels_out():
    target = torch.tensor([[[0, 0], [1, 255]], [[2, 2], [1, 0]]])
    prediction = torch.tensor([[[0, 1], [1, 2]], [[2, 0], [1, 0]]])
    matrices = confusion_counts(prediction, target, 3, ignore_index=255, per_image=True)
    intersection, union, pixels = per_image_counts(matrices)
    assert intersection.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert union.tolist() == [[2, 2, 0], [2, 1, 2]]
    assert pixels.tolist() == [3, 4]
    # kept for the whole test stage: they must not hold on to the [N, C, C] matrices
    assert intersection.untyped_storage().nbytes() == intersection.numel() * 8


def test_per_image_scores_come_back_in_the_split_order(caplog):
    target = torch.tensor([[[0, 0], [1, 255]], [[2, 2], [1, 0]]])
    matrices = confusion_counts(target.clamp(max=2), target, 3, ignore_index=255, per_image=True)
    scores = PerImageScores(3)
    scores.update(matrices, {"index": torch.tensor([5, 2]), "id": ["late", "early"]})
    scores.update(matrices[:1], {"index": torch.tensor([3]), "id": ["middle"]})
    kept = scores.gathered(None, ["a", "b", "c"])
    assert kept.ids == ["early", "middle", "late"]
    assert kept.pixels.tolist() == [4, 3, 3] and kept.intersection.tolist()[0] == [1, 1, 2]
    blind = PerImageScores(3)  # a dataset whose samples carry no index or id
    for _ in range(2):
        blind.update(matrices, {"image": None})
    assert blind.gathered(None, ["a", "b", "c"]) is None
    assert [record.message for record in caplog.records] == [
        "per-image test counts not kept: the test samples have no 'index' and 'id' (a "
        "SegmentationDataset gives both); no test intervals"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_image_counts_sum_to_the_confusion_matrix(seed):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 6, (5, 9, 7), generator=generator)
    target[target == 5] = 255  # a sixth of the pixels ignored
    prediction = torch.randint(0, 5, (5, 9, 7), generator=generator)
    matrix = ConfusionMatrix(num_classes=5, ignore_index=255)
    matrix.update(prediction, target)
    confmat = matrix.compute()
    handed = []
    each_image = ConfusionMatrix(num_classes=5, ignore_index=255)
    each_image.update(prediction, target, handed.append)
    assert torch.equal(each_image.compute(), confmat)  # the same sum, counted image by image
    [matrices] = handed
    assert matrices.shape == (5, 5, 5)
    for image in range(5):
        alone = ConfusionMatrix(num_classes=5, ignore_index=255)
        alone.update(prediction[image:image + 1], target[image:image + 1])
        assert torch.equal(matrices[image], alone.compute())
    intersection, union, pixels = per_image_counts(matrices)
    assert torch.equal(intersection.sum(0), confmat.diag())
    assert torch.equal(union.sum(0), confmat.sum(0) + confmat.sum(1) - confmat.diag())
    assert int(pixels.sum()) == int(confmat.sum())


def test_mismatched_class_names_are_refused():
    with pytest.raises(ValueError, match="does not match 3 class names"):
        segmentation_scores(torch.eye(2), ["a", "b", "c"])


def test_confusion_matrix_counts_as_torchmetrics_does():
    generator = torch.Generator().manual_seed(0)
    ours, reference = ConfusionMatrix(5, ignore_index=255), \
        MulticlassConfusionMatrix(5, ignore_index=255)
    for _ in range(3):
        target = torch.randint(0, 5, (4, 32, 32), generator=generator)
        target[torch.rand(target.shape, generator=generator) < 0.1] = 255
        prediction = torch.randint(0, 5, (4, 32, 32), generator=generator)
        ours.update(prediction, target)
        reference.update(prediction, target)
    assert torch.equal(ours.compute(), reference.compute())


def test_confusion_matrix_update_keeps_deterministic_mode():
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        ConfusionMatrix(3).update(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2).long())
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_predicted_classes_equal_argmax_with_ties_and_nan(dtype):
    logits = torch.randint(0, 3, (2, 5, 9, 11)).to(dtype)  # many ties: the first wins
    logits[0, 3, 4, 4] = float("nan")  # NaN counts as the largest, as in argmax
    assert torch.equal(predicted_classes(logits), logits.argmax(1))
    assert torch.equal(predicted_classes(logits[1], 0), logits[1].argmax(0))
    assert predicted_classes(logits)[0, 4, 4] == 3
