"""Full-integer int8 TFLite export with its model card, and the float-vs-int8 parity check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.frontend import Frontend, FrontendConfig
from edge_runtime.metrics import equal_error_rate
from edge_runtime.model import ModelCard, SpoofModel, TensorQuantization, sha256_of
from host_training.config import config_from_dict
from host_training.datasets import default_data_root, load_split
from host_training.features import clip_scores, clip_windows, keras_window_scores
from host_training.int8_ranges import RANGE_OUTLIER_SHARE, check_outlier_share
from host_training.model import board_model, load_detector
from host_training.model_card import write_card
from host_training.train import _subset
from host_training.waveforms import load_waveforms


class ExportError(RuntimeError):
    pass


def convert_int8(model, representative: np.ndarray,
                 outlier_share: float = RANGE_OUTLIER_SHARE) -> bytes:
    """Keras model -> int8-in/int8-out TFLite flatbuffer, calibrated on ``representative``
    (each activation's range cut at its ``outlier_share`` tails: host_training.int8_ranges).

    The conversion, and one inference of its result through the board's interpreter, run in a
    child process: some graphs (SELU's exponential, measured) give an int8 model whose
    allocation aborts the interpreter from C++ with no Python error, and a run that dies with a
    bare "Aborted" tells its user nothing. Here that becomes an ExportError naming the step
    and the signal, and no such model is handed on."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile

    check_outlier_share(outlier_share)

    with tempfile.TemporaryDirectory(prefix="edge-detect-int8-") as folder:
        model_path, data_path, out_path = (Path(folder) / name for name in
                                           ("model.keras", "representative.npy", "int8.tflite"))
        model.save(model_path)
        np.save(data_path, np.asarray(representative, dtype=np.float32))
        child = subprocess.run([sys.executable, "-m", "host_training.export", str(model_path),
                                str(data_path), str(out_path), str(float(outlier_share))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "KERAS_BACKEND": "tensorflow"})
        if child.returncode != 0:
            steps = [line[len(_STEP):] for line in child.stderr.splitlines()
                     if line.startswith(_STEP)]
            step = steps[-1] if steps else "the TFLite converter, converting the model to int8"
            if child.returncode < 0:
                raise ExportError(f"{step}: crashed ({signal.Signals(-child.returncode).name})")
            last = (child.stderr.strip().splitlines() or ["no message"])[-1]
            raise ExportError(f"{step}: failed (exit {child.returncode}: {last})")
        return out_path.read_bytes()


# How the child names the step it is in on stderr, so a crash can be named.
_STEP = "edge-detect step: "


def _convert_int8_here(model, representative: np.ndarray,
                       outlier_share: float = RANGE_OUTLIER_SHARE) -> bytes:
    import tensorflow as tf

    from host_training.int8_ranges import narrowed_calibration

    def samples():
        for window in representative:
            yield [window[None, :, :, None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with narrowed_calibration(representative, outlier_share):
        return converter.convert()


def tensor_report(tflite_path: Path) -> dict[str, Any]:
    """Tensor dtypes and op names of a .tflite: TFLITE_BUILTINS_INT8 does not fail when an op
    stays float, so export checks this itself."""
    from edge_runtime.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(tflite_path))
    dtypes = Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details())
    ops: list[str] = []
    try:
        ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    except AttributeError:
        pass
    return {"tensor_dtypes": dict(dtypes), "ops": ops}


def provisional_model(tflite_path: Path, frontend: FrontendConfig) -> SpoofModel:
    """The int8 model as the board runs it, under a provisional card written beside it
    (threshold 0.5, no measurements), so SpoofModel accepts it before its threshold and
    float-vs-int8 parity are measured."""
    from edge_runtime.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    probe = interpreter_type(model_path=str(tflite_path))
    input_q = TensorQuantization(*probe.get_input_details()[0]["quantization"])
    output_q = TensorQuantization(*probe.get_output_details()[0]["quantization"])
    write_card(tflite_path, ModelCard(tflite_path.name, sha256_of(tflite_path), frontend,
                                      input_q, output_q, 0.5))
    return SpoofModel(tflite_path)


def export_run(run_dir: Path, out_path: Path, data_root: Path | None = None,
               cache_dir: Path | None = None, representative_count: int = 300,
               outlier_share: float = RANGE_OUTLIER_SHARE, log=print) -> dict[str, Any]:
    """Exports ``run_dir/best.keras`` to ``out_path`` (.tflite) plus its card (.json)."""
    check_outlier_share(outlier_share)  # before minutes of loading, not in the converter's child
    config = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = load_detector(run_dir / "best.keras")
    frontend = Frontend(config.frontend)
    root = data_root or (Path(config.data.root) if config.data.root else default_data_root())
    seed = config.training.seed

    train_utts = _subset(load_split(root, config.data.train_split), config.data.max_files, seed)
    for corpus in config.data.train_roots:
        train_utts += _subset(load_split(Path(corpus), config.data.train_split),
                              config.data.max_files, seed)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train_utts), size=min(representative_count, len(train_utts)),
                        replace=False)
    train_waves = load_waveforms([train_utts[i] for i in sorted(chosen)],
                                 config.frontend.sample_rate, cache_dir)
    representative, _ = clip_windows(train_waves, frontend)
    log(f"converting to int8 with {len(representative)} representative windows")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(convert_int8(board_model(model, config.model), representative,
                                      outlier_share))
    report = tensor_report(out_path)
    if report["tensor_dtypes"].get("float32"):
        raise ExportError(f"{out_path}: float32 tensors remain after int8 conversion: {report}")

    dev_root = Path(config.data.dev_root) if config.data.dev_root else root
    dev_utts = _subset(load_split(dev_root, config.data.dev_split), config.data.max_files,
                       seed + 1)
    dev_waves = load_waveforms(dev_utts, config.frontend.sample_rate, cache_dir)
    dev_labels = np.array([u.is_spoof for u in dev_utts], dtype=bool)
    features, owners = clip_windows(dev_waves, frontend)
    float_windows = keras_window_scores(model, features)

    int8_model = provisional_model(out_path, config.frontend)
    input_q, output_q = int8_model.input_quantization, int8_model.output_quantization
    int8_windows = int8_model.score_windows(features)

    float_clips = clip_scores(float_windows, owners, len(dev_utts))
    int8_clips = clip_scores(int8_windows, owners, len(dev_utts))
    float_rates = equal_error_rate(float_clips[~dev_labels], float_clips[dev_labels])
    int8_rates = equal_error_rate(int8_clips[~dev_labels], int8_clips[dev_labels])
    threshold = int8_rates.threshold
    parity = {
        "windows": len(features),
        "max_abs_score_difference": float(np.max(np.abs(float_windows - int8_windows))),
        "mean_abs_score_difference": float(np.mean(np.abs(float_windows - int8_windows))),
        "label_agreement": float(np.mean((float_clips >= float_rates.threshold)
                                         == (int8_clips >= threshold))),
        "dev_eer_float": float_rates.eer,
        "dev_eer_int8": int8_rates.eer,
        "calibration": {"clips": len(chosen), "windows": len(representative),
                        "range_outlier_share": outlier_share},
    }
    extra = {
        "name": "edge-detect SpecRNet-edge",
        "architecture": {"family": "SpecRNet-style residual CNN", **config.model.__dict__},
        "parameters": int(model.count_params()),
        "size_bytes": out_path.stat().st_size,
        "tflite": report,
        "training": {"config": config.to_dict(), "best_epoch": metrics["best_epoch"],
                     "train": metrics["train"], "dev": metrics["dev"]},
        "quantization": parity,
        "threshold_source": (f"EER point of the int8 model on {dev_root.name} "
                             f"{config.data.dev_split}"),
        "metrics": {},
    }
    card = ModelCard(out_path.name, sha256_of(out_path), config.frontend, input_q, output_q,
                     threshold, extra)
    card_path = write_card(out_path, card)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1024:.1f} KiB) and {card_path.name}; "
        f"dev EER float {float_rates.eer * 100:.2f} % / int8 {int8_rates.eer * 100:.2f} %, "
        f"max |float-int8| {parity['max_abs_score_difference']:.4f}")
    return card.to_dict()


if __name__ == "__main__":  # the child convert_int8 starts: MODEL.keras DATA.npy OUT.tflite SHARE
    import sys

    from edge_runtime.model import interpreter_class

    print(f"{_STEP}the TFLite converter, converting the model to int8", file=sys.stderr,
          flush=True)
    _model = load_detector(sys.argv[1])
    Path(sys.argv[3]).write_bytes(_convert_int8_here(_model, np.load(sys.argv[2]),
                                                     float(sys.argv[4])))
    print(f"{_STEP}the board's interpreter, running the int8 model", file=sys.stderr,
          flush=True)
    _interpreter = interpreter_class()[0](model_path=sys.argv[3])
    _interpreter.allocate_tensors()
    _interpreter.invoke()
