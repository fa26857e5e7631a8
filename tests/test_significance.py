"""Bootstrap intervals and paired tests of per-image counts, checked against hand-computed
numbers, scipy.stats (bootstrap, permutation_test) as the independent reference, plain loops
and a synthetic population whose mIoU is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from seglab.core.significance import (
    Counts,
    bootstrap_intervals,
    holm,
    mean_iou_of_sums,
    paired_test,
    pooled,
)

# Synthetic population of 4 classes: class c is in an image with probability PRESENCE[c], with a
# union of 50-499 pixels, of which a Beta(A[c], B[c]) share (independent of the union) is
# intersection. So E[I_c] / E[U_c] = A / (A + B) and the population mIoU is their mean.
PRESENCE = np.array([1.0, 0.6, 0.4, 0.3])
A = np.array([8.0, 3.0, 5.0, 2.0])
B = np.array([2.0, 3.0, 5.0, 6.0])
TRUE_MIOU = float(np.mean(A / (A + B)))  # (0.8 + 0.5 + 0.5 + 0.25) / 4 = 0.5125


def population_sample(images: int, rng: np.random.Generator) -> Counts:
    present = rng.random((images, 4)) < PRESENCE
    union = rng.integers(50, 500, (images, 4)) * present
    intersection = rng.binomial(union, rng.beta(A, B, (images, 4)))
    return Counts(intersection, union, union.sum(1))


def random_counts(images: int, classes: int, quality: float, seed: int) -> Counts:
    """Integer counts (exact sums in float64) with classes missing from some images."""
    rng = np.random.default_rng(seed)
    union = rng.integers(1, 400, (images, classes)) * (rng.random((images, classes)) < 0.7)
    intersection = rng.binomial(union, quality)
    return Counts(intersection, union, union.sum(1) + 10)


def stacked(a: Counts, b: Counts) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([a.intersection, b.intersection]),
            np.concatenate([a.union, b.union]))


def test_scores_from_summed_counts_by_hand():
    # 3 images x 3 classes; class 2 never occurs (union 0 everywhere): NaN, left out of the mean
    counts = Counts(intersection=[[3, 1, 0], [2, 0, 0], [5, 4, 0]],
                    union=[[4, 2, 0], [6, 1, 0], [5, 8, 0]], pixels=[6, 7, 12])
    # summed: I = [10, 5, 0], U = [15, 11, 0] -> (10/15 + 5/11) / 2 = 37/66
    assert counts.mean_iou() == pytest.approx(37 / 66)
    assert counts.pixel_accuracy() == pytest.approx(15 / 25)
    assert counts.images == 3
    sums = mean_iou_of_sums(np.array([[10, 5, 0], [0, 0, 0]]), np.array([[15, 11, 0], [0, 0, 0]]))
    assert sums[0] == pytest.approx(37 / 66) and np.isnan(sums[1])
    assert np.isnan(Counts([[0, 0]], [[0, 0]], [0]).pixel_accuracy())


def test_pooled_averages_each_image_over_the_runs():
    a, b = random_counts(5, 3, 0.6, seed=1), random_counts(5, 3, 0.8, seed=2)
    both = pooled([a, b])
    np.testing.assert_array_equal(both.intersection, (a.intersection + b.intersection) / 2)
    np.testing.assert_array_equal(both.union, (a.union + b.union) / 2)
    np.testing.assert_array_equal(both.pixels, (a.pixels + b.pixels) / 2)


def test_bootstrap_equals_scipy_percentile_bootstrap():
    # Same generator, same draws (scipy draws integers(0, n, (resamples, n)), as do we in
    # chunks), same linear quantiles: equal up to the last bits of the quantile arithmetic.
    counts = random_counts(12, 3, 0.7, seed=3)

    def miou(idx, axis):
        return mean_iou_of_sums(counts.intersection[idx].sum(-2), counts.union[idx].sum(-2))

    def accuracy(idx, axis):
        return counts.intersection[idx].sum((-2, -1)) / counts.pixels[idx].sum(-1)

    ours = bootstrap_intervals(counts, resamples=3000, seed=7, confidence=0.9)
    for key, statistic in (("mIoU", miou), ("pixel_acc", accuracy)):
        reference = stats.bootstrap((np.arange(12),), statistic, vectorized=True, n_resamples=3000,
                                    confidence_level=0.9, method="percentile",
                                    rng=np.random.default_rng(7)).confidence_interval
        assert ours[key] == pytest.approx((reference.low, reference.high), rel=1e-12)
        assert reference.low < reference.high


def test_paired_interval_equals_a_plain_loop():
    a, b = random_counts(30, 4, 0.7, seed=4), random_counts(30, 4, 0.6, seed=5)
    rng = np.random.default_rng(11)
    differences = []
    for _ in range(500):
        idx = rng.integers(0, 30, 30)
        differences.append(
            np.nanmean(a.intersection[idx].sum(0) / a.union[idx].sum(0))
            - np.nanmean(b.intersection[idx].sum(0) / b.union[idx].sum(0)))
    low, high = np.quantile(differences, [0.025, 0.975])
    result = paired_test(a, b, resamples=500, seed=11)
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-14)
    assert result.difference == pytest.approx(a.mean_iou() - b.mean_iou())
    assert result.low < result.difference < result.high


@pytest.mark.parametrize(("quality_b", "seed_b", "p_value"), [
    (0.3, 6, 2 / 256),  # a clear difference: no swap but the identity is as far out (2 x 1/256)
    (0.68, 7, 60 / 256),  # a weak one
])
def test_exact_permutation_p_value_equals_scipy(quality_b, seed_b, p_value):
    a, b = random_counts(8, 3, 0.7, seed=6), random_counts(8, 3, quality_b, seed=seed_b)
    intersection, union = stacked(a, b)

    def difference(x, y, axis):
        return (mean_iou_of_sums(intersection[x].sum(-2), union[x].sum(-2))
                - mean_iou_of_sums(intersection[y].sum(-2), union[y].sum(-2)))

    reference = stats.permutation_test((np.arange(8), np.arange(8, 16)), difference,
                                       permutation_type="samples", vectorized=True,
                                       n_resamples=256, alternative="two-sided")
    result = paired_test(a, b, resamples=256)
    assert result.exact and result.permutations == 256 and result.images == 8
    assert result.difference == reference.statistic
    assert result.p_value == reference.pvalue == p_value


def test_random_permutation_p_value_agrees_with_scipy():
    a, b = random_counts(40, 3, 0.70, seed=8), random_counts(40, 3, 0.69, seed=9)
    intersection, union = stacked(a, b)

    def difference(x, y, axis):
        return (mean_iou_of_sums(intersection[x].sum(-2), union[x].sum(-2))
                - mean_iou_of_sums(intersection[y].sum(-2), union[y].sum(-2)))

    reference = stats.permutation_test((np.arange(40), np.arange(40, 80)), difference,
                                       permutation_type="samples", vectorized=True,
                                       n_resamples=9999, rng=np.random.default_rng(0))
    result = paired_test(a, b, resamples=4000)
    assert not result.exact and result.permutations == 4000
    assert 0.1 < reference.pvalue < 0.9  # 0.145 (ours 0.151)
    # Monte-Carlo sd of p = 2 * tail share at p = 0.15: 2 * sqrt(0.075 * 0.925 / 4000) = 0.008
    # for ours, 0.005 for scipy's 9999: 0.04 is 4 sd of their difference
    assert result.p_value == pytest.approx(reference.pvalue, abs=0.04)


def test_exact_only_when_all_swaps_fit_in_the_resamples():
    a, b = random_counts(8, 3, 0.7, seed=1), random_counts(8, 3, 0.6, seed=2)
    assert paired_test(a, b, resamples=256).exact
    assert not paired_test(a, b, resamples=255).exact


@pytest.mark.parametrize("images", [8, 30])  # exact and randomised
def test_identical_runs_do_not_differ(images):
    a = random_counts(images, 3, 0.7, seed=10)
    result = paired_test(a, a, resamples=500)
    assert (result.difference, result.low, result.high, result.p_value) == (0, 0, 0, 1)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, float("nan"), 0.04, 0.03, 0.005])  # NaN is not a test: m stays 4
    assert np.isnan(adjusted[1])
    assert adjusted[:1] + adjusted[2:] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # 2 * 0.6 capped, and the larger one never below it
    assert holm([]) == []


def test_undefined_resamples_are_left_out():
    # image 1 has no counted pixels: the quarter of the resamples that draw only it have no
    # score and are left out; every other one has image 0's scores.
    counts = Counts([[3, 1], [0, 0]], [[4, 2], [0, 0]], [6, 0])
    intervals = bootstrap_intervals(counts, resamples=200)
    assert intervals["mIoU"] == pytest.approx((counts.mean_iou(),) * 2)
    assert intervals["pixel_acc"] == pytest.approx((4 / 6, 4 / 6))
    empty = bootstrap_intervals(Counts([[0, 0]], [[0, 0]], [0]), resamples=50)
    assert all(np.isnan(empty["mIoU"])) and all(np.isnan(empty["pixel_acc"]))


def test_intervals_halve_with_four_times_the_images():
    # mean widths over 8 test sets each (one 100-image set's width varies by about 13%)
    rng = np.random.default_rng(12)
    widths = [np.mean([np.ptp(bootstrap_intervals(population_sample(images, rng))["mIoU"])
                       for _ in range(8)]) for images in (100, 400)]
    assert 0.35 < widths[1] / widths[0] < 0.65  # 0.49


def test_intervals_cover_the_population_miou_at_the_nominal_rate():
    # 400 test sets: the binomial sd of the rate at 0.95 is sqrt(0.95 * 0.05 / 400) = 0.011,
    # so 0.90 and 0.99 are 4.6 and 3.7 sd away (room for the percentile method's small-sample
    # undercoverage; a wrong width, e.g. by a factor 1.5, falls outside).
    rng = np.random.default_rng(13)
    covered = []
    for _ in range(400):
        low, high = bootstrap_intervals(population_sample(200, rng), resamples=500)["mIoU"]
        covered.append(low <= TRUE_MIOU <= high)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_shapes_that_do_not_match_are_refused():
    with pytest.raises(ValueError, match=r"union \(2, 3\).*pixels \(2,\)"):
        Counts(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"pixels \(3,\)"):
        Counts(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="at least one image"):
        Counts(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))
    a, b = random_counts(5, 3, 0.7, seed=1), random_counts(6, 3, 0.7, seed=1)
    with pytest.raises(ValueError, match=r"\(5, 3\) and \(6, 3\)"):
        paired_test(a, b)
    with pytest.raises(ValueError, match=r"\[\(5, 3\), \(6, 3\)\]"):
        pooled([a, b])
    with pytest.raises(ValueError, match="resamples must be at least 1; got 0"):
        bootstrap_intervals(a, resamples=0)
