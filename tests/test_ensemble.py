"""`edge-train ensemble`: several int8 models scored together by their mean logit."""

from __future__ import annotations

import numpy as np
import pytest

from host_training.ensemble import mean_logit


def test_mean_logit_is_the_probability_of_the_mean_logit() -> None:
    combined = mean_logit([np.array([0.9, 0.5, 0.2]), np.array([0.1, 0.5, 0.2])])
    assert combined == pytest.approx([0.5, 0.5, 0.2])
    # Two confident models against one that is unsure: the logit mean stays with them.
    assert mean_logit([np.array([0.99]), np.array([0.99]), np.array([0.5])])[0] > 0.9


def test_saturated_scores_stay_finite() -> None:
    combined = mean_logit([np.array([0.0, 1.0]), np.array([0.0, 1.0])])
    assert np.all(np.isfinite(combined))
    assert combined[0] < 1e-3 and combined[1] > 1 - 1e-3
