"""Loss choices: values, ignore_index, class weights, the weighted sum."""

import pytest
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss

from seglab.engine.losses import WeightedSum, cross_entropy


def _batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :2] = 255
    return logits, target


def test_cross_entropy_skips_ignored_pixels():
    logits, target = _batch()
    kept = target != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[kept], target[kept])
    assert cross_entropy(255)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_class_weights_change_the_loss_as_torch_defines():
    logits, target = _batch()
    weights = [1.0, 2.0, 0.5]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights), ignore_index=255)
    assert cross_entropy(255, weights)(logits, target).item() == pytest.approx(expected.item())


def test_negative_class_weights_are_refused():
    with pytest.raises(ValueError, match="loss.class_weights"):
        cross_entropy(255, [1.0, -1.0])


def test_weighted_sum_adds_its_terms():
    logits, target = _batch()
    ce, dice = cross_entropy(255), DiceLoss("multiclass", ignore_index=255)
    total = WeightedSum({"ce": ce, "dice": dice}, {"ce": 1.0, "dice": 0.5})
    expected = ce(logits, target) + 0.5 * dice(logits, target)
    assert total(logits, target).item() == pytest.approx(expected.item())


def test_weighted_sum_needs_a_weight_per_term():
    with pytest.raises(ValueError, match="must name the same terms"):
        WeightedSum({"ce": cross_entropy()}, {"dice": 1.0})
