"""Int8 ranges cut at the calibration's tails: narrower where one window stretched them, never
wider than min / max, zero kept inside, and typical windows scored closer to float."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.frontend import FrontendConfig

FRONTEND = FrontendConfig(window_seconds=0.5, n_bands=16)
FRAMES, BANDS = FRONTEND.feature_shape


@pytest.fixture(scope="module")
def hard_swish_case():
    import keras

    from host_training.model import ModelConfig, board_model, build_model

    config = ModelConfig(activation="hard_swish", stem_channels=4, blocks=2, dense_units=8)
    keras.utils.set_random_seed(0)
    model = build_model((FRAMES, BANDS), config)
    rng = np.random.default_rng(1)
    windows = rng.normal(0.0, 1.0, size=(40, FRAMES, BANDS)).astype(np.float32)
    windows[7] *= 30.0  # one window far louder than the rest stretches every range
    return model, board_model(model, config), windows


def _ranges(model_bytes: bytes) -> dict[str, tuple[float, float]]:
    from tensorflow.lite.tools import flatbuffer_utils

    from host_training.int8_ranges import activation_tensors

    model = flatbuffer_utils.convert_bytearray_to_object(model_bytes)
    tensors = model.subgraphs[0].tensors
    return {tensors[i].name: (tensors[i].quantization.min[0], tensors[i].quantization.max[0])
            for i in activation_tensors(model, [])}


def _calibrated(board, windows: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(board)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([w[None, :, :, None]] for w in windows)
    converter._experimental_calibrate_only = True
    return converter.convert()


def test_tails_are_cut_only_inward_and_zero_stays_in_range(hard_swish_case) -> None:
    from host_training.int8_ranges import tail_cut_ranges

    _, board, windows = hard_swish_case
    calibrated = _calibrated(board, windows)
    assert tail_cut_ranges(calibrated, windows, 0.0) is calibrated
    before, after = _ranges(calibrated), _ranges(tail_cut_ranges(calibrated, windows, 0.01))
    assert before.keys() == after.keys() and before
    narrowed = 0
    for name, (low, high) in after.items():
        old_low, old_high = before[name]
        assert old_low <= low and high <= old_high, name  # only ever narrower
        if old_low >= 0:
            assert low == old_low, name  # a floor at or above 0 stays exact
        elif (low, high) != (old_low, old_high):
            assert low <= 0.0 <= high, name  # zero stays representable
        narrowed += high < 0.5 * old_high
    assert narrowed >= 3  # the loud window no longer sets the ranges
    with pytest.raises(ValueError, match="outlier share"):
        tail_cut_ranges(calibrated, windows, 0.5)


def test_typical_windows_score_closer_to_float(hard_swish_case, tmp_path) -> None:
    from host_training.export import convert_int8, provisional_model

    model, board, windows = hard_swish_case
    typical = np.delete(windows, 7, axis=0)
    float_scores = model.predict(typical[..., None], verbose=0)[:, 0]
    errors = {}
    for share in (0.0, 0.01):
        path = tmp_path / f"m{share}.tflite"
        path.write_bytes(convert_int8(board, windows, outlier_share=share))
        int8 = provisional_model(path, FRONTEND).score_windows(typical)
        errors[share] = float(np.mean(np.abs(int8 - float_scores)))
    assert errors[0.01] < errors[0.0]


def test_the_cut_leaves_at_most_the_share_outside_each_end() -> None:
    from host_training.int8_ranges import HISTOGRAM_BINS, tail_range

    values = np.random.default_rng(2).standard_normal(200_000)
    low, high = float(values.min()), float(values.max())
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = np.histogram(values, bins=edges)[0]
    share = 1e-3
    cut_low, cut_high = tail_range(counts, edges, share, low, high)
    bin_width = edges[1] - edges[0]
    assert np.mean(values < cut_low) <= share and np.mean(values > cut_high) <= share
    exact_low, exact_high = np.quantile(values, [share, 1 - share])
    # the cut is the edge of the bin holding the quantile (float binning: a little slack)
    assert abs(cut_low - exact_low) <= 1.5 * bin_width
    assert abs(cut_high - exact_high) <= 1.5 * bin_width
    # a floor at or above zero stays; an empty histogram keeps the range
    assert tail_range(counts, edges + 10 - low, share, 10.0, high + 10 - low)[0] == 10.0
    assert tail_range(np.zeros_like(counts), edges, share, low, high) == (low, high)


def test_the_converter_gets_its_calibration_back_even_after_an_error() -> None:
    from tensorflow.lite.python.optimize import calibrator

    from host_training.int8_ranges import narrowed_calibration

    original = calibrator.Calibrator.calibrate
    with pytest.raises(RuntimeError), narrowed_calibration(np.zeros((1, FRAMES, BANDS))):
        assert calibrator.Calibrator.calibrate is not original
        raise RuntimeError("conversion failed")
    assert calibrator.Calibrator.calibrate is original
