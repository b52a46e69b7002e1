"""The streaming input pipeline: worker processes give exactly the in-memory features, scoring
windows are the board's, checkpoints resume, and weights mean the same on every backend."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.frontend import Frontend, FrontendConfig
from host_training.augment import AugmentConfig
from host_training.features import clip_windows, training_window
from host_training.waveforms import to_int16, write_store
from tests.conftest import on_jax_cpu, speech_like

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs the train extra (TensorFlow)")

FRONTEND = FrontendConfig(window_seconds=1.0, n_bands=40)
# Every random effect on: the per-clip streams are all exercised.
AUGMENT = AugmentConfig(gain_prob=1.0, noise_prob=0.5, trim_prob=0.5, shift_prob=0.5,
                        freq_mask_prob=0.5, time_mask_prob=0.5)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    clips = [to_int16(speech_like(0.5 + 0.15 * i, seed=i)) for i in range(11)]
    return write_store(tmp_path_factory.mktemp("clips") / "clips", iter(clips))


def _batches(dataset) -> list[tuple[np.ndarray, ...]]:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    return [tuple(np.asarray(part) for part in batch)
            for batch in PyDatasetAdapter(dataset, shuffle=False).get_numpy_iterator()]


def test_worker_processes_stream_the_in_memory_features(store) -> None:
    from host_training.streaming import TrainingWindows, clip_rng

    order = np.random.default_rng(3).permutation(len(store))
    targets = (np.arange(len(store)) % 2).astype(np.float32)
    weights = np.linspace(0.5, 1.5, len(store)).astype(np.float32)

    def epoch(workers: int, seed: int = 7, number: int = 2):
        return _batches(TrainingWindows(store, order, targets, weights, FRONTEND, AUGMENT,
                                        seed, number, batch_size=4, workers=workers))

    streamed = epoch(workers=2)
    assert [len(b[0]) for b in streamed] == [4, 4, 3]
    # The reference: clips in RAM, one window each from the clip's own (seed, epoch, clip)
    # generator, computed in this process with the workers' one BLAS thread (a matrix product
    # split over threads sums in another order: last-bit differences).
    from threadpoolctl import threadpool_limits

    frontend = Frontend(FRONTEND)
    waves = list(store)
    with threadpool_limits(1):
        expected = np.stack([training_window(waves[i], frontend, clip_rng(7, 2, int(i)),
                                             AUGMENT) for i in order])
    features = np.concatenate([b[0] for b in streamed])
    np.testing.assert_array_equal(features[..., 0], expected)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in streamed]), targets[order])
    np.testing.assert_array_equal(np.concatenate([b[2] for b in streamed]), weights[order])
    one_worker = epoch(workers=1)
    for a, b in zip(streamed, one_worker, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(features, np.concatenate([b[0] for b in epoch(2, number=3)]))


def test_worker_batches_arrive_in_shared_memory_not_pickled(store) -> None:
    from host_training.batch_ring import shared_rings_available
    from host_training.streaming import TrainingWindows

    if not shared_rings_available():
        pytest.skip("needs memfd (Linux)")
    ones = np.ones(len(store), dtype=np.float32)
    windows = TrainingWindows(store, np.arange(len(store)), ones, ones, FRONTEND, AUGMENT,
                              0, 1, batch_size=4, workers=2)
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    held = []
    for features, _, _ in PyDatasetAdapter(windows, shuffle=False).get_numpy_iterator():
        held.append(features)
        # each batch the trainer holds is a view of a ring slot, not an unpickled copy
        assert windows._ring.held() >= len(held)
    np.testing.assert_array_equal(held[0], windows[0][0])  # as the trainer computes it
    del held, features
    import gc
    import time

    # Keras's enqueuer thread may still be letting go of the last batch for a moment.
    deadline = time.monotonic() + 5
    while windows._ring.held() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert windows._ring.held() == 0
    # Keras calls this after the pass: the batches' memory goes back even if TensorFlow keeps
    # the dataset alive.
    windows.on_epoch_end()
    assert windows._ring.resident_bytes() <= windows._ring.header_bytes


def test_batches_travel_pickled_when_the_trainer_holds_every_slot(store, monkeypatch) -> None:
    from host_training import batch_ring, streaming

    if not batch_ring.shared_rings_available():
        pytest.skip("needs memfd (Linux)")
    monkeypatch.setattr(batch_ring, "CLAIM_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(streaming, "_batch_ring",
                        lambda workers, shape: batch_ring.BatchRing(1, shape))
    ones = np.ones(len(store), dtype=np.float32)
    windows = streaming.TrainingWindows(store, np.arange(len(store)), ones, ones, FRONTEND,
                                        AUGMENT, 0, 1, batch_size=2, workers=2)
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    # Every batch is kept: the one slot stays held, so later batches must come pickled.
    held = [features for features, _, _ in
            PyDatasetAdapter(windows, shuffle=False).get_numpy_iterator()]
    assert windows._ring.held() == 1 and len(held) == windows.num_batches
    for index, features in enumerate(held):
        np.testing.assert_array_equal(features, windows[index][0])


def test_sharded_batches_split_each_global_batch(store) -> None:
    from host_training.streaming import Sharding, TrainingWindows

    ones = np.ones(len(store), dtype=np.float32)
    parts = [TrainingWindows(store, np.arange(len(store)), ones, ones, FRONTEND, None, 0, 1,
                             batch_size=4, sharding=Sharding(i, 2), drop_remainder=True)
             for i in range(2)]
    assert [p.batch_size for p in parts] == [2, 2] and parts[0].num_batches == 2
    assert sorted(np.concatenate([p.order for p in parts])) == list(range(10))


def test_scoring_windows_are_the_boards(store) -> None:
    import keras

    from host_training.features import clip_scores
    from host_training.streaming import ScoringWindows, stream_clip_scores

    waves = list(store)
    features, owners = clip_windows(waves, Frontend(FRONTEND))
    windows = ScoringWindows(store, FRONTEND, workers=2)
    np.testing.assert_array_equal(windows.owners, owners)
    streamed = np.concatenate([b[0] for b in _batches(windows)])[: len(owners), ..., 0]
    np.testing.assert_array_equal(streamed, features)

    inputs = keras.Input((*FRONTEND.feature_shape, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))
    direct = model.predict(features[..., None], verbose=0)[:, 0]
    np.testing.assert_allclose(stream_clip_scores(model, store, FRONTEND, workers=1),
                               clip_scores(direct, owners, len(waves)), rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bonafide/ and spoof/ folders per split; spoofs carry a buzz the model can learn."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("corpus")
    for split, count in (("train", 10), ("dev", 5)):
        for key in ("bonafide", "spoof/buzz"):
            folder = root / split / key
            folder.mkdir(parents=True)
            for i in range(count):
                seed = i + (100 if split == "dev" else 0)
                audio = speech_like(0.8 + 0.1 * i, seed=seed)
                if key != "bonafide":
                    t = np.arange(audio.shape[0]) / 16000
                    audio = 0.5 * audio + 0.1 * np.sign(np.sin(2 * np.pi * 110 * t))
                sf.write(folder / f"{i}.wav", audio.astype(np.float32), 16000)
    return root


def _tiny_config(epochs: int, **training):
    from host_training.config import config_from_dict

    return config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 2, "dense_units": 16, "dropout": 0.0},
        "augment": {"gain_prob": 1.0, "noise_prob": 0.3, "trim_prob": 0.0},
        "training": {"epochs": epochs, "batch_size": 8, "patience": 10, **training},
    })


# SAM: a resumed run must take SAM steps again (the step is bound to the instance, not saved).
@pytest.mark.parametrize("training", [{}, {"sam_rho": 0.05}], ids=["plain", "sam"])
def test_an_interrupted_run_resumes_on_the_same_stream(training: dict, tiny_corpus: Path,
                                                       tmp_path: Path) -> None:
    from host_training.train import ResumeError, train

    quiet = lambda _: None  # noqa: E731
    train(_tiny_config(2, **training), tmp_path / "straight", tmp_path / "cache", tiny_corpus,
          quiet, 2)
    train(_tiny_config(1, **training), tmp_path / "resumed", tmp_path / "cache", tiny_corpus,
          quiet, 2)
    # The same config with more epochs: an interrupted run of it (config.json says 1 epoch).
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    config["training"]["epochs"] = 2
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(config))
    lines: list[str] = []
    train(_tiny_config(2, **training), tmp_path / "resumed", tmp_path / "cache", tiny_corpus,
          lines.append, 2)
    assert any(line.startswith("resuming after epoch 1") for line in lines)
    assert any("SAM steps of radius" in line for line in lines) == bool(training)
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [e["epoch"] for e in resumed] == [1, 2]
    for a, b in zip(straight, resumed, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["dev_eer"] == pytest.approx(b["dev_eer"])
    with pytest.raises(ResumeError):
        train(_tiny_config(2, learning_rate=0.01), tmp_path / "resumed", tmp_path / "cache",
              tiny_corpus, quiet, 2)


def test_the_cosine_schedule_reaches_the_optimizer(tiny_corpus: Path, tmp_path: Path) -> None:
    import keras

    from host_training.train import train

    train(_tiny_config(2, learning_rate=0.01, lr_schedule="cosine"), tmp_path / "run",
          tmp_path / "cache", tiny_corpus, lambda _: None, 2)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [e["learning_rate"] for e in history] == pytest.approx([0.01, 0.005])
    last = keras.models.load_model(tmp_path / "run" / "last.keras")
    assert float(last.optimizer.learning_rate) == pytest.approx(0.005)


JAX_TRAINS = """
import json, sys
from pathlib import Path
import keras, numpy as np
from host_training.config import config_from_dict
from host_training.train import train
config = config_from_dict(json.loads(sys.argv[1]))
run, cache, corpus, scores = map(Path, sys.argv[2:])
train(config, run, cache, corpus, lambda _: None, workers=2)
x = np.random.default_rng(0).normal(size=(16, 97, 40, 1)).astype("float32")
np.save(scores, keras.models.load_model(run / "best.keras").predict(x, verbose=0))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (the jax extra)")
def test_a_run_trained_on_jax_exports_the_same_int8_model_as_on_tensorflow(
        tiny_corpus: Path, tmp_path: Path) -> None:
    import keras

    from host_training.export import convert_int8
    from host_training.model import build_model

    config = _tiny_config(2)
    on_jax_cpu("-c", JAX_TRAINS, json.dumps(config.to_dict()), str(tmp_path / "run"),
               str(tmp_path / "cache"), str(tiny_corpus), str(tmp_path / "jax-scores.npy"),
               timeout=600)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == "jax"
    from_jax = keras.models.load_model(tmp_path / "run" / "best.keras")
    on_tf = build_model(config.frontend.feature_shape, config.model)
    on_tf.set_weights(from_jax.get_weights())
    x = np.random.default_rng(0).normal(size=(16, 97, 40, 1)).astype("float32")
    np.testing.assert_allclose(on_tf.predict(x, verbose=0), np.load(tmp_path / "jax-scores.npy"),
                               atol=1e-5)
    representative = np.random.default_rng(1).normal(size=(20, 97, 40)).astype("float32")
    # Tensor names follow Keras's per-process layer counters, so the files are compared by
    # what they compute: every tensor's type, shape and quantization, every constant, and the
    # int8 outputs.
    assert (_int8_contents(convert_int8(from_jax, representative), representative)
            == _int8_contents(convert_int8(on_tf, representative), representative))


def _int8_contents(flatbuffer: bytes, windows: np.ndarray) -> list:
    from edge_runtime.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_content=flatbuffer)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    produced |= {int(d["index"]) for d in interpreter.get_input_details()}
    constants = {int(i) for op in ops for i in op["inputs"] if i >= 0} - produced
    contents: list = []
    for tensor in sorted(interpreter.get_tensor_details(), key=lambda t: t["index"]):
        scales = tensor["quantization_parameters"]["scales"]
        contents.append((np.dtype(tensor["dtype"]).name, tuple(tensor["shape"]),
                         tuple(np.round(scales, 12)),
                         tuple(tensor["quantization_parameters"]["zero_points"])))
        if tensor["index"] in constants:
            contents.append(interpreter.get_tensor(tensor["index"]).tobytes())
    assert len(constants) >= 8  # weights and biases of every layer
    source, = interpreter.get_input_details()
    output, = interpreter.get_output_details()
    scale, zero = source["quantization"]
    for window in windows:
        quantized = np.clip(np.round(window / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], quantized[None, :, :, None])
        interpreter.invoke()
        contents.append(interpreter.get_tensor(output["index"]).tobytes())
    return contents


def test_mixup_in_worker_batches_matches_the_in_process_batch(store) -> None:
    from host_training.streaming import TrainingWindows

    mixing = AugmentConfig(gain_prob=1.0, freq_mask_prob=0.5, mixup_prob=1.0, mixup_alpha=1.0)
    targets = (np.arange(len(store)) % 2).astype(np.float32)
    ones = np.ones(len(store), dtype=np.float32)
    order = np.arange(len(store))
    plain = TrainingWindows(store, order, targets, ones, FRONTEND, mixing, 5, 1, batch_size=4)
    first = plain[0]
    assert ((first[1] > 0) & (first[1] < 1)).any()  # soft targets: windows were mixed
    streamed = _batches(TrainingWindows(store, order, targets, ones, FRONTEND, mixing, 5, 1,
                                        batch_size=4, workers=2))
    np.testing.assert_array_equal(streamed[0][0], first[0])
    np.testing.assert_array_equal(streamed[0][1], first[1])
    np.testing.assert_array_equal(streamed[0][2], first[2])
