"""Host-side child of benchmarks/suite.py (TensorFlow; never imported by the edge runtime).

Latency does not depend on weight values, so the shipped architecture is rebuilt from the
model card (``card.extra["architecture"]`` = the ModelConfig fields of
``host_training.model.build_model``, ``card.frontend.feature_shape`` the input) with its random
initialisation. It then
- converts that model to a float32 .tflite (TFLiteConverter, no optimizations),
- times Keras ``predict`` (and a direct ``model(x, training=False)`` call) on one window,
- if ``host_training/baseline.py`` exists, does the same for the original SpecRNet and also
  converts it to int8 (calibrated on random windows: fine for latency, meaningless for scores).
Prints one JSON object on stdout.

Usage: python benchmarks/host_models.py --card edge_runtime/models/edge_detect.json --out DIR
           [--warmup 5] [--repeat 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _stats(durations: list[float]) -> dict:
    from edge_runtime.bench import latency_stats

    return latency_stats(durations)


def _time(fn, warmup: int, repeat: int) -> list[float]:
    from edge_runtime.bench import time_calls

    return time_calls(fn, warmup, repeat)


def _to_tflite(model, path: Path, int8_shape: tuple[int, ...] | None = None) -> Path:
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_shape is not None:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(8):
                yield [rng.standard_normal((1, *int8_shape)).astype(np.float32) * 10.0]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def _keras_latency(model, shape: tuple[int, ...], warmup: int, repeat: int) -> dict:
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    predict = _time(lambda: model.predict(x, verbose=0), warmup, repeat)
    call = _time(lambda: model(x, training=False), warmup, repeat)
    return {"predict_ms": _stats(predict), "call_ms": _stats(call),
            "parameters": int(model.count_params())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--card", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    # The converter and Keras print progress on stdout: keep fd 1 for the JSON answer only.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    from edge_runtime.model import ModelCard

    card = ModelCard.from_json(args.card)
    started = time.perf_counter()
    import tensorflow as tf

    from host_training.model import ModelConfig, build_model

    tf_import_s = time.perf_counter() - started
    tf.keras.utils.set_random_seed(0)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    architecture = {k: v for k, v in card.extra.get("architecture", {}).items() if k in known}
    config = ModelConfig(**architecture)
    frames, bands = card.frontend.feature_shape
    shape = (frames, bands, 1)
    result: dict = {"tensorflow": tf.__version__, "tf_import_s": tf_import_s,
                    "architecture": dataclasses.asdict(config), "input_shape": [1, *shape]}

    edge = build_model((frames, bands), config)
    result["edge"] = {
        "float32_tflite": str(_to_tflite(edge, args.out / "edge_float32.tflite")),
        "keras": _keras_latency(edge, shape, args.warmup, args.repeat),
    }
    if args.no_baseline:
        result["baseline"] = {"skipped": "--no-baseline"}
    elif importlib.util.find_spec("host_training.baseline") is None:
        result["baseline"] = {"skipped": "host_training/baseline.py is absent"}
    else:
        from host_training.baseline import build_specrnet

        baseline = build_specrnet((frames, bands))
        result["baseline"] = {
            "name": baseline.name,
            "float32_tflite": str(_to_tflite(baseline, args.out / "baseline_float32.tflite")),
            "int8_tflite": str(_to_tflite(baseline, args.out / "baseline_int8.tflite", shape)),
            "keras": _keras_latency(baseline, shape, args.warmup, args.repeat),
        }
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    answer.write(json.dumps(result) + "\n")
    answer.flush()


if __name__ == "__main__":
    main()
