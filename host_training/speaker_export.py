"""The speaker embedder as a full-integer int8 TFLite model with its card.

Resemblyzer's LSTMs are rebuilt in Keras *unrolled*: per layer, one FULLY_CONNECTED projects
every frame at once, then each of the 160 steps is a recurrent FULLY_CONNECTED, an ADD, a SPLIT
into the four gates, LOGISTIC / TANH and MULs (the first step projects its own frame and slices
its gates), all builtin int8 kernels with a quantisation of their own per step. (The fused LSTM
op would keep its cell state in int16, and Keras 3's LSTM converts to a WHILE loop that stays
float.) The weights are loaded, the float Keras model is checked against the NumPy reference,
and the int8 model against it (cosine of embeddings).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.model import CARD_FORMAT_VERSION, sha256_of
from edge_runtime.speaker import ROLE_SPEAKER
from edge_runtime.speaker_frontend import EMBEDDER_FRONTEND, SpeakerFrontendConfig
from host_training.speaker_weights import EMBEDDING_SIZE, LAYERS, UNITS

# Integer tensor types a full-integer model may hold: activations int8, biases int32.
INTEGER_DTYPES = ("int8", "int32")


def build_keras_embedder(weights: dict[str, np.ndarray], frames: int, bands: int) -> Any:
    """Input (frames, bands, 1) mel power -> (256,) ReLU embedding (not normalised)."""
    import keras

    inputs = keras.Input((frames, bands, 1), batch_size=1, name="mel_power")
    sequence = keras.layers.Reshape((frames, bands))(inputs)
    hidden = None
    for layer in range(LAYERS):
        w_ih = weights[f"lstm.weight_ih_l{layer}"]
        w_hh = weights[f"lstm.weight_hh_l{layer}"]
        bias = weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]
        project = keras.layers.Dense(4 * UNITS, name=f"lstm{layer}_input")
        recur = keras.layers.Dense(4 * UNITS, use_bias=False, name=f"lstm{layer}_recurrent")
        projected = project(sequence)
        project.set_weights([w_ih.T, bias])
        steps = keras.ops.split(projected, frames, axis=1)
        hidden, cell = None, None
        outputs = []
        for t in range(frames):
            if hidden is None:
                # The first step has no recurrence. Its gates come from their own
                # FULLY_CONNECTED and slices: the quantiser leaves a SPLIT fed by a SPLIT, or
                # by that FULLY_CONNECTED, in float.
                z = project(sequence[:, 0, :])
                i, f, g, o = (z[:, k * UNITS:(k + 1) * UNITS] for k in range(4))
            else:
                z = keras.ops.squeeze(steps[t], axis=1) + recur(hidden)
                i, f, g, o = keras.ops.split(z, 4, axis=-1)
            new = keras.ops.sigmoid(i) * keras.ops.tanh(g)
            cell = new if cell is None else keras.ops.sigmoid(f) * cell + new
            hidden = keras.ops.sigmoid(o) * keras.ops.tanh(cell)
            outputs.append(hidden)
        recur.set_weights([w_hh.T])
        if layer < LAYERS - 1:
            sequence = keras.ops.stack(outputs, axis=1)
    dense = keras.layers.Dense(EMBEDDING_SIZE, activation="relu", name="embedding")
    embedding = dense(hidden)
    dense.set_weights([weights["linear.weight"].T, weights["linear.bias"]])
    return keras.Model(inputs, embedding, name="ge2e_speaker_encoder")


def convert_int8(model: Any, representative: np.ndarray) -> bytes:
    """Full-integer TFLite (int8 input and output) calibrated on ``representative`` partials."""
    import tensorflow as tf

    def batches() -> Iterator[list[np.ndarray]]:
        for partial in representative:
            yield [partial[None, :, :, None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = batches
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def non_integer_tensors(tflite_path: Path) -> list[str]:
    """Names and types of tensors that are neither int8 nor int32 (a float op left behind)."""
    from edge_runtime.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(tflite_path))
    bad = []
    for detail in interpreter.get_tensor_details():
        name = np.dtype(detail["dtype"]).name
        if name not in INTEGER_DTYPES:
            bad.append(f"{detail['name']} ({name})")
    return bad


def card_dict(tflite_path: Path, input_q: tuple[float, int], output_q: tuple[float, int],
              threshold: float, speaker: SpeakerFrontendConfig,
              extra: dict[str, Any]) -> dict[str, Any]:
    """The embedder's JSON card (the board reads it with ``edge_runtime.model.ModelCard``)."""
    return {
        "format_version": CARD_FORMAT_VERSION,
        "model_file": tflite_path.name,
        "sha256": sha256_of(tflite_path),
        "role": ROLE_SPEAKER,
        "frontend": EMBEDDER_FRONTEND.to_dict(),
        "speaker_frontend": speaker.to_dict(),
        "input": {"scale": input_q[0], "zero_point": input_q[1], "dtype": "int8",
                  "shape": [1, *EMBEDDER_FRONTEND.feature_shape, 1]},
        "output": {"scale": output_q[0], "zero_point": output_q[1], "dtype": "int8",
                   "shape": [1, EMBEDDING_SIZE]},
        "threshold": threshold,
        **extra,
    }
