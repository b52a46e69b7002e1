"""Int8 activation ranges that ignore a calibration's rarest values.

TFLite's post-training calibration gives every activation tensor the min and max it saw over
all calibration windows. A hard-swish network has long tails: one window's peak can stretch a
tensor's range 50-fold past where nearly all its values lie (the stem's 6 * hard_swish output
reached 305 where 99.9 % of values stay far lower), leaving typical values a handful of int8
levels. Here each tensor's range is cut back to the quantiles that leave ``outlier_share`` of
its calibration values outside at each end; the rare values beyond saturate on the board.
Measured on extra dev (docs/quality.md, "Int8 ranges").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

# Share of each activation tensor's calibration values left outside its int8 range at each
# end (0: the converter's min / max).
RANGE_OUTLIER_SHARE = 3e-4
# Bins of the per-tensor histogram the quantiles are read from (between the tensor's min and
# max): the cut lands within 1/4096 of the full range of where it would on the values.
HISTOGRAM_BINS = 4096


def check_outlier_share(outlier_share: float) -> None:
    """The one rule for a share: 0 (min / max) up to, not including, half the values."""
    if not 0.0 <= outlier_share < 0.5:
        raise ValueError(f"outlier share {outlier_share}: must be in [0, 0.5)")


def activation_tensors(model_object: Any, exclude: Iterable[int]) -> list[int]:
    """Indices of the calibrated tensors that carry one (min, max) and hold no constant."""
    subgraph = model_object.subgraphs[0]
    skipped = set(exclude)
    chosen = []
    for index, tensor in enumerate(subgraph.tensors):
        quantization = tensor.quantization
        if index in skipped or quantization is None or quantization.min is None:
            continue
        if len(quantization.min) != 1:
            continue
        data = model_object.buffers[tensor.buffer].data if tensor.buffer is not None else None
        if data is not None and len(data):
            continue
        chosen.append(index)
    return chosen


def tail_cut_ranges(calibrated: bytes, windows: np.ndarray,
                    outlier_share: float = RANGE_OUTLIER_SHARE) -> bytes:
    """The calibrated (float, min / max annotated) TFLite model ``calibrated`` with every
    activation tensor's range narrowed to its (share, 1 - share) quantiles over ``windows``
    ((frames, bands) each). The model's input and output keep their ranges (the input's is
    the front end's contract with the card; the output's is the sigmoid's), and a range that
    starts at 0 or above keeps its minimum (an exact zero after ReLU-like ops)."""
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    check_outlier_share(outlier_share)
    if outlier_share == 0.0:
        return calibrated
    model_object = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    subgraph = model_object.subgraphs[0]
    tensors = activation_tensors(model_object, [*subgraph.inputs, *subgraph.outputs])
    interpreter = tf.lite.Interpreter(model_content=calibrated,
                                      experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    edges = {i: np.linspace(subgraph.tensors[i].quantization.min[0],
                            subgraph.tensors[i].quantization.max[0], HISTOGRAM_BINS + 1)
             for i in tensors}
    counts = {i: np.zeros(HISTOGRAM_BINS, dtype=np.int64) for i in tensors}
    for window in windows:
        interpreter.set_tensor(input_index, window[None, :, :, None].astype(np.float32))
        interpreter.invoke()
        for i in tensors:
            counts[i] += np.histogram(interpreter.get_tensor(i), bins=edges[i])[0]
    for i in tensors:
        quantization = subgraph.tensors[i].quantization
        low, high = tail_range(counts[i], edges[i], outlier_share, quantization.min[0],
                               quantization.max[0])
        quantization.min, quantization.max = [low], [high]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model_object))


def tail_range(counts: np.ndarray, edges: np.ndarray, outlier_share: float,
               low: float, high: float) -> tuple[float, float]:
    """(low, high) narrowed to the histogram's (share, 1 - share) quantiles: at most
    ``outlier_share`` of the counted values fall below the new low and as many above the new
    high. Never wider than (low, high); 0 stays inside; a low at or above 0 is kept; a
    histogram with no counts keeps (low, high)."""
    total = counts.sum()
    if total == 0:
        return float(low), float(high)
    cumulative = np.cumsum(counts) / total
    last = len(counts) - 1
    cut_low = edges[min(int(np.searchsorted(cumulative, outlier_share)), last)]
    cut_high = edges[min(int(np.searchsorted(cumulative, 1.0 - outlier_share)), last) + 1]
    new_low = float(max(low, min(cut_low, 0.0))) if low < 0 else float(low)
    return new_low, float(min(high, max(cut_high, 0.0)))


@contextmanager
def narrowed_calibration(windows: np.ndarray,
                         outlier_share: float = RANGE_OUTLIER_SHARE) -> Iterator[None]:
    """Within this block the TFLite converter's calibration step hands on its model with
    ``tail_cut_ranges`` applied, so the rest of the conversion (quantizer, I/O types, buffer
    de-duplication) runs exactly as the converter's own."""
    from tensorflow.lite.python.optimize import calibrator

    calibrate = calibrator.Calibrator.calibrate

    def narrowed(self: calibrator.Calibrator, dataset_gen: Any) -> bytes:
        return tail_cut_ranges(calibrate(self, dataset_gen), windows, outlier_share)

    calibrator.Calibrator.calibrate = narrowed
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate = calibrate
