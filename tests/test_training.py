"""Host training end to end on a tiny generated corpus: train 1 epoch, export int8, check it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edge_runtime.frontend import Frontend
from edge_runtime.model import SpoofModel, card_path_for
from host_training.config import config_from_dict
from host_training.export import export_run, tensor_report
from host_training.features import clip_windows
from host_training.train import train
from host_training.waveforms import load_waveforms
from tests.conftest import speech_like

# Checked without importing TensorFlow: collecting this module must not put TensorFlow into the
# pytest process, where other tests measure that the edge runtime never loads it.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs the train extra (TensorFlow)")


def _buzzy(seconds: float, seed: int) -> np.ndarray:
    """A crude 'vocoder' spoof: the speech-like signal with its harmonics replaced by a buzz."""
    clean = speech_like(seconds, seed=seed)
    t = np.arange(clean.shape[0]) / 16000
    buzz = np.sign(np.sin(2 * np.pi * 110 * t)) * 0.1
    return (0.5 * clean + buzz * (np.abs(clean) > 0.02)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for split, count in (("train", 12), ("dev", 6)):
        for key in ("bonafide", "spoof/buzz"):
            folder = root / split / key
            folder.mkdir(parents=True)
            for i in range(count):
                seconds = 0.8 + 0.1 * i
                seed = i + (100 if split == "dev" else 0)
                bona = key == "bonafide"
                audio = speech_like(seconds, seed=seed) if bona else _buzzy(seconds, seed)
                sf.write(folder / f"{i}.wav", audio, 16000)
    return root


@pytest.fixture(scope="module")
def exported(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("run")
    config = config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 2, "dense_units": 16},
        "training": {"epochs": 1, "batch_size": 8},
    })
    result = train(config, work / "run", data_root=tiny_corpus, log=lambda _: None)
    model_path = work / "model" / "tiny.tflite"
    card = export_run(result.run_dir, model_path, data_root=tiny_corpus, log=lambda _: None)
    return {"run": result, "model_path": model_path, "card": card, "corpus": tiny_corpus,
            "config": config}


def test_train_writes_run_folder(exported: dict) -> None:
    run_dir = exported["run"].run_dir
    for name in ("config.json", "history.json", "metrics.json", "best.keras"):
        assert (run_dir / name).exists(), name
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history) == 1 and 0.0 <= history[0]["dev_eer"] <= 1.0


def test_export_is_full_int8(exported: dict) -> None:
    report = tensor_report(exported["model_path"])
    assert "float32" not in report["tensor_dtypes"], report
    model = SpoofModel(exported["model_path"])
    assert model.card.sha256 == exported["card"]["sha256"]
    assert model.frontend_config == exported["config"].frontend


def test_int8_agrees_with_keras(exported: dict) -> None:
    """Measured: max |float - int8| about 0.01 on this tiny model; 0.05 leaves margin for
    calibration noise, and is far below what a wrong export (scale, layout) gives."""
    import tensorflow as tf

    from host_training.datasets import load_split

    keras_model = tf.keras.models.load_model(exported["run"].run_dir / "best.keras")
    model = SpoofModel(exported["model_path"])
    waves = load_waveforms(load_split(exported["corpus"], "dev"), 16000)
    features, _ = clip_windows(waves, Frontend(model.frontend_config))
    float_scores = keras_model.predict(features[..., None], verbose=0)[:, 0]
    int8_scores = model.score_windows(features)
    assert np.max(np.abs(float_scores - int8_scores)) < 0.05
    parity = exported["card"]["quantization"]
    assert parity["max_abs_score_difference"] < 0.05


def test_card_sha_mismatch_is_refused(exported: dict, tmp_path: Path) -> None:
    from edge_runtime.errors import ModelError

    model_copy = tmp_path / "copy.tflite"
    data = bytearray(exported["model_path"].read_bytes())
    model_copy.write_bytes(bytes(data))
    card = json.loads(card_path_for(exported["model_path"]).read_text())
    card["sha256"] = "0" * 64
    card_path_for(model_copy).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        SpoofModel(model_copy)


def test_evaluate_scores_float_and_int8_side_by_side(exported: dict, tmp_path: Path) -> None:
    from host_training.evaluate import evaluate_model, markdown_table

    det = tmp_path / "det.png"
    results = evaluate_model(exported["model_path"], exported["corpus"], ["dev"],
                             keras_path=exported["run"].run_dir / "best.keras", det_path=det)
    side = results["dev"]["float"]
    assert abs(side["eer"] - results["dev"]["eer"]) <= 0.2
    assert side["mean_abs_score_difference"] < 0.05
    assert det.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "float Keras model against the int8 model" in markdown_table(results)


def test_second_train_root_dev_root_and_weight_average(tiny_corpus: Path, tmp_path: Path) -> None:
    """Training reads more corpora's train splits, selects on another corpus's dev split, and
    scores the running weight average on dev from ``average_from_epoch`` on."""
    second = tmp_path / "second"
    for split in ("train", "dev"):
        for key in ("bonafide", "spoof/other"):
            folder = second / split / key
            folder.mkdir(parents=True)
            for i in range(4):
                bona = key == "bonafide"
                audio = speech_like(1.0, seed=200 + i) if bona else _buzzy(1.0, 200 + i)
                sf.write(folder / f"{i}.wav", audio, 16000)
    config = config_from_dict({
        "data": {"train_roots": [str(second)], "dev_root": str(second),
                 "spoof_group_cap": 5, "bonafide_group_cap": 5},
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 2, "dense_units": 16},
        "training": {"epochs": 2, "batch_size": 8, "average_from_epoch": 1, "patience": 5},
    })
    lines: list[str] = []
    result = train(config, tmp_path / "run", data_root=tiny_corpus, log=lines.append)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["train"]["files"] == 24 + 8
    assert metrics["dev"]["files"] == 8  # the second corpus's dev split, not the first's
    history = json.loads((result.run_dir / "history.json").read_text())
    assert "averaged_dev_eer" not in history[0] and "averaged_dev_eer" in history[1]
    # Caps of 5 per group: 5 bona fide + 5 buzz + 4 other-spoof... per epoch, not all 32 clips.
    assert "14 clips" in next(line for line in lines if line.startswith("epoch   1"))


def test_evaluate_cli_names_splits_by_corpus(exported: dict, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from host_training.cli import main

    out = tmp_path / "results.json"
    result = CliRunner().invoke(main, [
        "evaluate", "--model", str(exported["model_path"]), "--data", str(exported["corpus"]),
        "--split", "dev", "--name", "tiny", "--json", str(out), "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == ["tiny/dev"]
    assert "| tiny/dev |" in result.output


def test_ensemble_cli_scores_each_model_and_their_mean(exported: dict, tmp_path: Path) -> None:
    from host_training.cli import main

    model = str(exported["model_path"])
    out_json = tmp_path / "ensemble.json"
    out = CliRunner().invoke(main, ["ensemble", model, model, "--data", str(exported["corpus"]),
                                    "--split", "dev", "--json", str(out_json)])
    assert out.exit_code == 0, out.output
    assert "mean logit of 2" in out.output
    result = json.loads(out_json.read_text())
    assert [m["model"] for m in result["models"]] == [model, model]
    single = result["models"][0]["eer"]
    # One model twice is that model: the same ranking, the same EER.
    assert result["ensemble"]["eer"] == pytest.approx(single)


def test_ensemble_scores_map_is_what_training_reads_and_keeps_other_clips(
        exported: dict, tmp_path: Path) -> None:
    from host_training.cli import main
    from host_training.config import TrainConfig, config_from_dict
    from host_training.datasets import load_split
    from host_training.train import training_targets

    model = str(exported["model_path"])
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"/elsewhere/clip.flac": 0.25}))
    out = CliRunner().invoke(main, ["ensemble", model, model, "--data", str(exported["corpus"]),
                                    "--split", "dev", "--scores", str(scores)])
    assert out.exit_code == 0, out.output
    written = json.loads(scores.read_text())
    assert written["/elsewhere/clip.flac"] == 0.25
    utterances = load_split(exported["corpus"], "dev")
    assert {str(u.path.resolve()) for u in utterances} <= written.keys()
    config = config_from_dict({**TrainConfig().to_dict(), "training": {
        "teacher_scores": str(scores), "teacher_weight": 1.0}})
    labels = np.array([float(u.is_spoof) for u in utterances])
    targets = training_targets(utterances, labels, config, log=lambda *_: None)
    expected = [written[str(u.path.resolve())] for u in utterances]
    np.testing.assert_allclose(targets, expected, rtol=1e-6)


def test_ensemble_refuses_a_scores_file_that_is_not_a_map(exported: dict,
                                                           tmp_path: Path) -> None:
    from host_training.cli import main

    scores = tmp_path / "scores.json"
    scores.write_text("[1, 2]")
    model = str(exported["model_path"])
    out = CliRunner().invoke(main, ["ensemble", model, model, "--data", str(exported["corpus"]),
                                    "--split", "dev", "--scores", str(scores)])
    assert out.exit_code != 0
    assert "not a score map" in out.output
    assert scores.read_text() == "[1, 2]"


def test_ensemble_cli_needs_two_models(exported: dict) -> None:
    from host_training.cli import main

    out = CliRunner().invoke(main, ["ensemble", str(exported["model_path"]),
                                    "--data", str(exported["corpus"])])
    assert out.exit_code == 2
    assert "at least two models" in out.output


def _aborting_python(tmp_path: Path, step: str = "") -> str:
    """A Python stand-in that dies as TensorFlow's converter, or LiteRT allocating a SELU
    model, does (after announcing ``step`` as the conversion child does)."""
    fake = tmp_path / "python-that-aborts"
    announce = f'echo "{step}" >&2\n' if step else ""
    fake.write_text(f"#!/bin/sh\n{announce}kill -ABRT $$\n")
    fake.chmod(0o755)
    return str(fake)


def test_a_converter_crash_is_an_export_error_not_a_dead_process(
        exported: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import keras

    from host_training.export import ExportError, convert_int8

    model = keras.models.load_model(exported["run"].run_dir / "best.keras")
    monkeypatch.setattr(sys, "executable", _aborting_python(tmp_path))
    with pytest.raises(ExportError, match="crashed \\(SIGABRT\\)"):
        convert_int8(model, np.zeros((2, *exported["config"].frontend.feature_shape)))


def test_export_cli_says_what_failed_in_one_line_and_exits_3(
        exported: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from host_training.cli import main

    monkeypatch.setattr(sys, "executable", _aborting_python(tmp_path))
    out_path = tmp_path / "m.tflite"
    result = CliRunner().invoke(main, ["export", "--run", str(exported["run"].run_dir),
                                       "--out", str(out_path), "--data",
                                       str(exported["corpus"]), "--cache", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "converter, converting the model to int8: crashed (SIGABRT)" in result.output
    assert "Traceback" not in result.output
    assert not out_path.exists()


def test_an_int8_model_that_crashes_the_interpreter_is_not_handed_on(
        exported: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import keras

    from host_training.export import _STEP, ExportError, convert_int8

    model = keras.models.load_model(exported["run"].run_dir / "best.keras")
    step = f"{_STEP}the board's interpreter, running the int8 model"
    monkeypatch.setattr(sys, "executable", _aborting_python(tmp_path, step))
    with pytest.raises(ExportError, match="interpreter, running the int8 model: crashed"):
        convert_int8(model, np.zeros((2, *exported["config"].frontend.feature_shape)))


@pytest.mark.parametrize("pooling", [
    {"pooling": "time"}, {"pooling": "time_max"}, {"pooling": "time", "stem_band_pool": 4},
    {"pooling": "time", "head": "one_class"}])
def test_pooling_exports_to_full_int8_and_agrees(pooling: dict, tmp_path: Path) -> None:
    """The band-keeping heads, a stem pool merging more bands than frames and the one-class
    head's cosine lower to int8 kernels, not to a float op the converter would leave behind
    silently, and the int8 scores follow the float ones."""
    from edge_runtime.frontend import FrontendConfig
    from host_training.export import convert_int8, provisional_model
    from host_training.model import ModelConfig, build_model

    frontend = FrontendConfig(window_seconds=1.0, n_bands=40)
    model = build_model(frontend.feature_shape, ModelConfig(stem_channels=4, blocks=2,
                                                            dense_units=16, **pooling))
    features = np.random.default_rng(0).normal(
        -4.0, 2.0, size=(24, *frontend.feature_shape)).astype(np.float32)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert_int8(model, features))
    report = tensor_report(path)
    assert "float32" not in report["tensor_dtypes"], report
    assert "AVERAGE_POOL_2D" in report["ops"]
    float_scores = model.predict(features[..., None], verbose=0)[:, 0]
    int8_scores = provisional_model(path, frontend).score_windows(features)
    assert np.corrcoef(float_scores, int8_scores)[0, 1] > 0.9


@pytest.mark.parametrize("pooling", ["global", "time"])
def test_hard_swish_board_form_is_the_same_function(pooling: str) -> None:
    """6 * hard_swish with the factor taken out of every kernel that reads an activation: the
    float scores are the trained model's, whatever the weights."""
    import keras

    from host_training.model import ModelConfig, board_model, build_model

    config = ModelConfig(activation="hard_swish", stem_channels=4, blocks=2, dense_units=8,
                         pooling=pooling)
    model = build_model((50, 16), config)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    board = board_model(model, config)
    assert not any(isinstance(layer, keras.layers.Activation) for layer in board.layers)
    features = rng.normal(-2.0, 3.0, size=(6, 50, 16, 1)).astype(np.float32)
    assert np.allclose(board.predict(features, verbose=0), model.predict(features, verbose=0),
                       atol=1e-5)
    relu = ModelConfig(stem_channels=4, blocks=2, dense_units=8)
    relu_model = build_model((50, 16), relu)
    assert board_model(relu_model, relu) is relu_model  # only hard-swish has a board form


def test_hard_swish_exports_without_the_hard_swish_kernel(tmp_path: Path) -> None:
    """LiteRT's XNNPACK delegate has no int8 HARD_SWISH: exported through export_run's path,
    a hard-swish model holds only ADD and MUL for it, runs as one delegate partition, and its
    int8 scores follow the float ones."""
    import keras

    from edge_runtime.frontend import FrontendConfig
    from edge_runtime.model import interpreter_class
    from host_training.export import convert_int8, provisional_model
    from host_training.model import ModelConfig, board_model, build_model

    frontend = FrontendConfig(window_seconds=1.0, n_bands=40)
    config = ModelConfig(activation="hard_swish", stem_channels=4, blocks=2, dense_units=16)
    keras.utils.set_random_seed(0)  # the same weights whatever ran before
    model = build_model(frontend.feature_shape, config)
    rng = np.random.default_rng(0)
    features = rng.normal(-4.0, 2.0, size=(24, *frontend.feature_shape)).astype(np.float32)
    # Windows of different levels, so the scores spread over many int8 output steps.
    features *= rng.uniform(0.2, 3.0, size=(24, 1, 1)).astype(np.float32)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert_int8(board_model(model, config), features))
    report = tensor_report(path)
    assert "float32" not in report["tensor_dtypes"], report
    assert "HARD_SWISH" not in report["ops"] and "MUL" in report["ops"], report
    interpreter_type, name = interpreter_class()
    if name.startswith("ai_edge_litert"):  # its default XNNPACK delegate
        interpreter = interpreter_type(model_path=str(path))
        interpreter.allocate_tensors()
        interpreter.invoke()  # the default delegate is applied at the first invoke
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        assert ops.count("DELEGATE") == 1, ops
    float_scores = model.predict(features[..., None], verbose=0)[:, 0]
    int8_scores = provisional_model(path, frontend).score_windows(features)
    assert np.corrcoef(float_scores, int8_scores)[0, 1] > 0.9


@pytest.mark.parametrize("option, value, read_back", [
    ("label_smoothing", 0.2, lambda model: model.loss.get_config()["label_smoothing"]),
    ("weight_decay", 0.01, lambda model: model.optimizer.get_config()["weight_decay"]),
])
def test_a_training_option_reaches_the_compiled_model(option: str, value: float, read_back,
                                                       tmp_path: Path,
                                                       tiny_corpus: Path) -> None:
    import keras

    config = config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 1, "dense_units": 8},
        "training": {"epochs": 1, "batch_size": 8, option: value},
    })
    result = train(config, tmp_path / "run", data_root=tiny_corpus, log=lambda _: None)
    model = keras.models.load_model(result.run_dir / "best.keras")
    assert read_back(model) == pytest.approx(value)


def test_weight_decay_shrinks_kernels_and_leaves_biases_and_norms_alone() -> None:
    import keras

    from host_training.config import OptimConfig
    from host_training.train import make_optimizer

    assert isinstance(make_optimizer(OptimConfig()), keras.optimizers.Adam)
    optimizer = make_optimizer(OptimConfig(learning_rate=0.1, weight_decay=0.5))
    kernel = keras.Variable(np.ones((2, 2), dtype=np.float32), name="kernel")
    bias = keras.Variable(np.ones(2, dtype=np.float32), name="bias")
    gamma = keras.Variable(np.ones(2, dtype=np.float32), name="gamma")
    variables = [kernel, bias, gamma]
    optimizer.apply_gradients([(np.zeros(v.shape, dtype=np.float32), v) for v in variables])
    # no gradient: only the decay moves a weight, by learning rate * decay
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 0.95, rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bias), 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gamma), 1.0)


def test_a_resumed_run_still_keeps_biases_out_of_weight_decay(tmp_path: Path) -> None:
    import keras

    from host_training.config import OptimConfig
    from host_training.train import exempt_offsets_from_decay, make_optimizer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, bias_initializer="ones")])
    model.compile(optimizer=make_optimizer(OptimConfig(learning_rate=0.1, weight_decay=0.5)),
                  loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    model.save(tmp_path / "last.keras")
    resumed = keras.models.load_model(tmp_path / "last.keras")
    exempt_offsets_from_decay(resumed.optimizer)
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in resumed.trainable_variables)
    resumed.optimizer.apply_gradients(
        [(np.zeros(v.shape, dtype=np.float32), v) for v in resumed.trainable_variables])
    # Adam's moments from the first step still move both a little; decay moves the kernel only
    after_kernel, after_bias = (keras.ops.convert_to_numpy(v) for v in resumed.trainable_variables)
    moment_step = np.abs(after_bias - bias).max()
    assert np.abs(after_kernel - kernel * (1 - 0.1 * 0.5)).max() <= moment_step + 1e-6
    assert np.abs(after_kernel - kernel).max() > moment_step + 0.01


def test_one_class_loss_wants_bona_fide_near_the_direction_and_spoofs_away() -> None:
    import keras

    from host_training.one_class import BONAFIDE_MARGIN, SPOOF_MARGIN, OneClassLoss

    loss = OneClassLoss()

    def at(target: float, cosine: float) -> float:
        score = np.array([[(1.0 - cosine) / 2.0]], dtype=np.float32)
        return float(keras.ops.convert_to_numpy(loss(np.array([[target]]), score)))

    # each side costs little past its margin and a lot on the wrong side of the other's
    assert at(0.0, BONAFIDE_MARGIN + 0.1) < 0.2 < 5.0 < at(0.0, SPOOF_MARGIN)
    assert at(1.0, SPOOF_MARGIN - 0.1) < 0.2 < 5.0 < at(1.0, BONAFIDE_MARGIN)
    # a soft target mixes the two sides
    assert at(0.5, 0.5) == pytest.approx(0.5 * at(0.0, 0.5) + 0.5 * at(1.0, 0.5), rel=1e-5)
    # labels of shape (batch,) beside scores of (batch, 1), as fit gives them: each clip is
    # scored against its own label, not against every label of the batch
    scores = np.array([[0.02], [0.45]], dtype=np.float32)
    batch = float(keras.ops.convert_to_numpy(loss(np.array([0.0, 1.0]), scores)))
    assert batch == pytest.approx((at(0.0, 0.96) + at(1.0, 0.1)) / 2, rel=1e-4)


def test_one_class_run_trains_saves_and_scores_in_zero_one(tmp_path: Path,
                                                           tiny_corpus: Path) -> None:
    from host_training.model import load_detector
    from host_training.one_class import OneClassLoss

    config = config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 1, "dense_units": 8, "head": "one_class"},
        "training": {"epochs": 1, "batch_size": 8, "label_smoothing": 0.1},
    })
    result = train(config, tmp_path / "run", data_root=tiny_corpus, log=lambda _: None)
    model = load_detector(result.run_dir / "best.keras")
    assert isinstance(model.loss, OneClassLoss)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    features = np.random.default_rng(2).normal(
        -4.0, 2.0, size=(8, *config.frontend.feature_shape, 1)).astype(np.float32)
    scores = model.predict(features, verbose=0)[:, 0]
    assert np.all((scores >= 0.0) & (scores <= 1.0)) and np.ptp(scores) > 0
    with pytest.raises(ValueError, match="head"):
        config_from_dict({"model": {"head": "softmax"}})


def test_stem_band_pool_gives_the_blocks_the_shape_of_half_the_bands() -> None:
    """Twice the bands pooled four to one after the stem: every later layer has the shape (and
    the weights' count) of the usual model on half the bands (its int8 export:
    test_pooling_exports_to_full_int8_and_agrees); a pool below 1 is refused where the config
    is read."""
    import keras

    from host_training.model import ModelConfig, build_model

    usual = build_model((100, 20), ModelConfig(stem_channels=4, blocks=2, dense_units=8))
    fine_config = ModelConfig(stem_channels=4, blocks=2, dense_units=8, stem_band_pool=4)
    fine = build_model((100, 40), fine_config)
    stem_pool = next(layer for layer in fine.layers
                     if isinstance(layer, keras.layers.MaxPooling2D))
    assert stem_pool.output.shape[1:] == (50, 10, 4)
    assert [layer.output.shape for layer in fine.layers[3:]] == [
        layer.output.shape for layer in usual.layers[3:]]
    assert fine.count_params() == usual.count_params()
    with pytest.raises(ValueError, match="stem_band_pool"):
        ModelConfig(stem_band_pool=0)


def test_a_save_that_dies_half_way_leaves_the_previous_model_whole(tmp_path: Path) -> None:
    # A GPU round collects best.keras while its run may be rewriting it (session 14 read one
    # half-written: BadZipFile).
    import keras

    from host_training.model import load_detector, save_model

    first = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    path = tmp_path / "best.keras"
    save_model(first, path)

    class DiesMidWrite(keras.Sequential):
        def save(self, filepath, *args, **kwargs):
            Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
            raise KeyboardInterrupt

    second = DiesMidWrite([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(KeyboardInterrupt):
        save_model(second, path)
    restored = load_detector(path, compile=False)
    np.testing.assert_array_equal(restored.get_weights()[0], first.get_weights()[0])
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]


@pytest.mark.parametrize("score, what", [
    (0.9999, "gives all 12 dev clips one score (0.9999): its output has saturated"),
    (np.nan, "gives dev scores that are not numbers: training diverged")])
def test_a_run_that_cannot_learn_stops_in_one_line_and_keeps_its_history(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, score: float,
        what: str) -> None:
    import host_training.streaming as streaming
    from host_training.cli import main

    scored = streaming.stream_clip_scores

    def stuck(*args, **kwargs) -> np.ndarray:  # every clip the same score, as a dead run's
        return np.full_like(scored(*args, **kwargs), score)

    monkeypatch.setattr(streaming, "stream_clip_scores", stuck)
    (tmp_path / "c.toml").write_text(
        '[frontend]\nwindow_seconds = 1.0\nn_bands = 40\n'
        '[model]\nstem_channels = 4\nblocks = 1\ndense_units = 8\n'
        '[training]\nepochs = 3\nbatch_size = 8\n')
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--config", str(tmp_path / "c.toml"), "--out", str(run_dir),
        "--data", str(tiny_corpus), "--cache", str(tmp_path / "cache"), "--workers", "1"])
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("edge-train:")]
    assert errors == [
        f"edge-train: error: epoch 1: the model {what} and no later epoch can move it; history "
        f"so far in {run_dir / 'history.json'}. Start again with another --seed or a lower "
        "learning rate"]
    assert "Traceback" not in result.output
    assert [entry["epoch"] for entry in json.loads((run_dir / "history.json").read_text())] \
        == [1]
