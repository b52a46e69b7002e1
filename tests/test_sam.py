"""Sharpness-aware minimisation (host_training.sam): the step it takes, on both backends."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from host_training.config import config_from_dict
from tests.conftest import REPO, on_jax_cpu
from tests.sam_step_check import expected_sam_step, keras_step


def test_a_sam_step_applies_the_gradient_taken_up_the_loss() -> None:
    np.testing.assert_allclose(keras_step(sam=True), expected_sam_step(), atol=1e-5)


def test_a_plain_step_lands_elsewhere_so_the_check_can_tell() -> None:
    assert np.abs(keras_step(sam=False) - expected_sam_step()).max() > 1e-3


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (the jax extra)")
def test_a_sam_step_on_jax_is_the_same_step() -> None:
    output = on_jax_cpu(str(REPO / "tests" / "sam_step_check.py"))
    assert float(output.strip().splitlines()[-1]) < 1e-5


def test_sam_radius_must_be_positive_to_enable_and_not_negative_in_a_config() -> None:
    import keras

    from host_training.sam import enable_sam

    with pytest.raises(ValueError, match="sam_rho"):
        enable_sam(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), 0.0)
    with pytest.raises(ValueError, match="sam_rho"):
        config_from_dict({"training": {"sam_rho": -0.1}})
