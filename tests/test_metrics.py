import numpy as np
import pytest

from edge_runtime.metrics import equal_error_rate, min_dcf, threshold_at_frr


def test_eer_of_separated_and_swapped_scores() -> None:
    assert equal_error_rate([0.1, 0.2], [0.8, 0.9]).eer == 0.0
    assert equal_error_rate([0.8, 0.9], [0.1, 0.2]).eer == 1.0


def test_eer_matches_gaussian_theory() -> None:
    # Two unit Gaussians 2 apart cross at 1 sigma: EER = Phi(-1) = 0.1587.
    rng = np.random.default_rng(0)
    rates = equal_error_rate(rng.normal(0, 1, 20000), rng.normal(2, 1, 20000))
    assert rates.eer == pytest.approx(0.1587, abs=0.006)
    assert rates.threshold == pytest.approx(1.0, abs=0.05)


def test_threshold_at_frr_rejects_at_most_target() -> None:
    scores = np.linspace(0, 1, 101)
    for target in (0.0, 0.01, 0.05, 0.2):
        threshold = threshold_at_frr(scores, target)
        assert np.mean(scores >= threshold) <= target
        assert np.mean(scores >= threshold) >= target - 0.011


def test_min_dcf_bounds() -> None:
    assert min_dcf([0.1, 0.2], [0.8, 0.9]) == 0.0
    assert min_dcf([0.9], [0.1]) == pytest.approx(1.0)


def test_eer_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        equal_error_rate([], [0.5])
