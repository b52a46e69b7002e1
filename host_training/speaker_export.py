"""The speaker embedder as a TFLite model with int8 weights, and its card.

Resemblyzer's encoder is rebuilt in Keras (3 LSTM layers, Linear, ReLU), its weights loaded and
checked against the NumPy reference, and converted with dynamic-range quantisation: every
weight matrix int8 (1.7 MB instead of 5.7 MB), activations float. The input is divided per band
by the bands' mean power (a float MUL, folded back into the first LSTM's weights) so that the
LSTM's per-frame input quantisation keeps the quiet bands: on 16 partials, cosine to the float
model 0.978 (min 0.77) with it, 0.93 (min 0.74) without. float16 weights are exact but take
13 ms a partial here against 5.8 ms.

Why not full int8 like the detector: measured on 24 bona fide partials (docs/owner.md), this
LSTM takes linear mel *power* (90 % of values below 0.004, peaks above 30) and is very sensitive
to the precision of its gate pre-activations. An unrolled full-int8 build (every tensor int8 or
int32, per-step quantisation) gave embeddings with cosine 0.43 to the float model (SV-EER 34 %
against 8.6 %); int8 input alone gives 0.69, int8 gate pre-activations alone 0.50. TFLite's
integer LSTM kernel keeps gates and cell state in int16, but its input would still be int8
linear power. So the board runs int8 weights with float activations, and says so on the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.model import CARD_FORMAT_VERSION, sha256_of
from edge_runtime.speaker import ROLE_SPEAKER
from edge_runtime.speaker_frontend import EMBEDDER_FRONTEND, SpeakerFrontendConfig
from host_training.speaker_weights import EMBEDDING_SIZE, LAYERS, UNITS


def build_keras_embedder(weights: dict[str, np.ndarray], frames: int, bands: int,
                         band_scale: np.ndarray | None = None) -> Any:
    """Input (frames, bands, 1) mel power -> (256,) ReLU embedding (not normalised).

    ``band_scale`` (one positive number per band, e.g. the bands' mean power) divides the input
    by a float MUL, which dynamic-range quantisation leaves float, and multiplies the first
    LSTM's input weights back: the same function, but the LSTM's run-time input quantisation
    (per frame, to int8) no longer rounds the quiet high bands of a frame to zero.
    """
    import keras

    inputs = keras.Input((frames, bands, 1), batch_size=1, name="mel_power")
    sequence = keras.layers.Reshape((frames, bands))(inputs)
    scale = np.ones(bands, dtype=np.float32) if band_scale is None else band_scale
    sequence = sequence * keras.ops.convert_to_tensor((1.0 / scale).astype(np.float32))
    lstms = []
    for layer in range(LAYERS):
        lstm = keras.layers.LSTM(UNITS, return_sequences=layer < LAYERS - 1,
                                 name=f"lstm{layer}")
        sequence = lstm(sequence)
        lstms.append(lstm)
    dense = keras.layers.Dense(EMBEDDING_SIZE, activation="relu", name="embedding")
    model = keras.Model(inputs, dense(sequence), name="ge2e_speaker_encoder")
    # PyTorch and Keras share the gate order (i, f, g, o); PyTorch's two biases add up.
    for layer, lstm in enumerate(lstms):
        kernel = weights[f"lstm.weight_ih_l{layer}"].T
        if layer == 0:
            kernel = kernel * scale[:, None]
        lstm.set_weights([kernel, weights[f"lstm.weight_hh_l{layer}"].T,
                          weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]])
    dense.set_weights([weights["linear.weight"].T, weights["linear.bias"]])
    return model


def convert_int8_weights(model: Any) -> bytes:
    """TFLite with every weight matrix int8 (dynamic-range quantisation), activations float."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def float_weight_tensors(tflite_path: Path) -> list[str]:
    """Constant matrices (2 or more dimensions, not all zeros) that are not int8, in every
    subgraph (the LSTMs' weights live in their WHILE bodies): a weight matrix left float.

    Biases (1-D) stay float in dynamic-range quantisation; zero-filled initialisers hold no
    weights.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    bad = []
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data
            shape = [] if tensor.shape is None else list(tensor.shape)
            if data is None or len(shape) < 2 or tensor.type == schema.TensorType.INT8:
                continue
            if np.any(np.asarray(data, dtype=np.uint8)):
                bad.append(f"{tensor.name.decode(errors='replace')} "
                           f"({type_names.get(tensor.type, tensor.type)}, {shape})")
    return bad


def card_dict(tflite_path: Path, threshold: float, speaker: SpeakerFrontendConfig,
              extra: dict[str, Any]) -> dict[str, Any]:
    """The embedder's JSON card (the board reads it with ``edge_runtime.model.ModelCard``).

    Its input and output are float32 (the identity quantisation, scale 1 and zero point 0, with
    ``dtype`` saying so), its weights int8.
    """
    return {
        "format_version": CARD_FORMAT_VERSION,
        "model_file": tflite_path.name,
        "sha256": sha256_of(tflite_path),
        "role": ROLE_SPEAKER,
        "frontend": EMBEDDER_FRONTEND.to_dict(),
        "speaker_frontend": speaker.to_dict(),
        "input": {"scale": 1.0, "zero_point": 0, "dtype": "float32",
                  "shape": [1, *EMBEDDER_FRONTEND.feature_shape, 1]},
        "output": {"scale": 1.0, "zero_point": 0, "dtype": "float32",
                   "shape": [1, EMBEDDING_SIZE]},
        "weights": "int8 (dynamic-range quantisation); activations float32",
        "threshold": threshold,
        **extra,
    }
