"""Source-adversarial training (host_training.source_adversary): the reversal, the loss, the
sources, and a run whose best.keras is the plain detector."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_training.config import config_from_dict
from host_training.datasets import Utterance
from tests.conftest import on_jax_cpu, speech_like
from tests.conftest import two_source_corpus as make_two_source_corpus

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs the train extra (TensorFlow)")


def test_the_fitting_guess_trains_the_head_and_the_confusing_one_the_embedding() -> None:
    import tensorflow as tf

    from host_training.source_adversary import SourceGuess

    head = SourceGuess(3, units=4)
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 6)), dtype=tf.float32)
    for half, moves_head in ((slice(0, 3), True), (slice(3, 6), False)):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            loss = tf.reduce_sum(head(x)[:, half] ** 2)
        head_grads = tape.gradient(loss, head.trainable_weights)
        input_grad = tape.gradient(loss, x)
        assert all((g is not None and float(tf.reduce_max(tf.abs(g))) > 0) == moves_head
                   for g in head_grads)
        assert (input_grad is not None and float(tf.reduce_max(tf.abs(input_grad))) > 0) \
            == (not moves_head)
    fit, confuse = np.split(head(x).numpy(), 2, axis=1)
    np.testing.assert_allclose(fit, confuse, atol=1e-6)  # the same guess, twice


def test_loss_is_the_detectors_for_spoofs_and_adds_the_source_terms_for_bona_fide() -> None:
    from host_training.source_adversary import NO_SOURCE, SourceAdversaryLoss

    smoothing, weight = 0.1, 0.3
    y_true = np.array([[1.0, NO_SOURCE], [0.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    fit = np.array([[5.0, -1.0, 0.0], [0.2, 0.1, 1.5], [2.0, 0.0, -1.0]])
    confuse = np.array([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [1.0, 2.0, 0.5]])
    spoof = np.array([[0.8], [0.3], [0.1]])
    y_pred = np.concatenate([spoof, fit, confuse], axis=1).astype(np.float32)
    got = np.asarray(SourceAdversaryLoss(weight, smoothing).call(y_true, y_pred))

    def log_softmax(z: np.ndarray) -> np.ndarray:
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    target = y_true[:, 0] * (1 - smoothing) + smoothing / 2
    bce = -(target * np.log(spoof[:, 0]) + (1 - target) * np.log(1 - spoof[:, 0]))
    guess = -log_softmax(fit)[[0, 1, 2], [0, 2, 0]]
    uniform = -log_softmax(confuse).mean(axis=1)
    asked = np.array([0.0, 1.0, 1.0])
    np.testing.assert_allclose(got, bce + asked * (guess + weight * uniform), rtol=1e-5)
    # a uniform confusing guess is the floor of its term: log of the source count
    assert uniform[0] == pytest.approx(np.log(3))


def test_sources_are_the_bona_fide_groups_and_spoofs_have_none() -> None:
    from host_training.source_adversary import NO_SOURCE, bona_fide_sources

    clips = [Utterance(Path(f"{i}.flac"), key, system, speaker) for i, (key, system, speaker)
             in enumerate([("bonafide", "-", "VCTK_p225"), ("spoof", "tts", "VCTK_p225"),
                           ("bonafide", "-", "LJ_0"), ("bonafide", "-", "VCTK_p226"),
                           ("bonafide", "-", "EXT_maskgct_unk")])]
    ids, names = bona_fide_sources(clips)
    assert names == ["bonafide:EXT_maskgct", "bonafide:LJ", "bonafide:VCTK"]
    np.testing.assert_array_equal(ids, [2, NO_SOURCE, 1, 2, 0])


def test_a_config_refuses_what_the_head_cannot_go_with() -> None:
    with pytest.raises(ValueError, match="source_adversary_weight"):
        config_from_dict({"training": {"source_adversary_weight": -1.0}})
    with pytest.raises(ValueError, match="head"):
        config_from_dict({"training": {"source_adversary_weight": 0.5},
                          "model": {"head": "one_class"}})
    with pytest.raises(ValueError, match="mixup"):
        config_from_dict({"training": {"source_adversary_weight": 0.5},
                          "augment": {"mixup_prob": 0.5}})


@pytest.fixture(scope="module")
def two_source_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_two_source_corpus(tmp_path_factory.mktemp("corpus"))


def _config(epochs: int):
    return config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 1, "dense_units": 8, "dropout": 0.0},
        "training": {"epochs": epochs, "batch_size": 8, "patience": 10,
                     "label_smoothing": 0.1, "source_adversary_weight": 0.5},
    })


def test_a_run_trains_the_head_keeps_the_plain_detector_and_resumes(
        two_source_corpus: Path, tmp_path: Path) -> None:
    from host_training.model import load_detector
    from host_training.train import LAST_CHECKPOINT, train

    lines: list[str] = []
    straight = train(_config(2), tmp_path / "straight", tmp_path / "cache", two_source_corpus,
                     lines.append, 2)
    assert any("source adversary: 2 bona fide sources" in line for line in lines)
    best = load_detector(straight.run_dir / "best.keras")
    assert best.output_shape == (None, 1)
    assert "source_guess" not in {layer.name for layer in best.layers}
    last = load_detector(straight.run_dir / LAST_CHECKPOINT)
    assert last.output_shape == (None, 5)  # spoof probability + 2 x 2 source logits
    features = np.random.default_rng(1).normal(
        -4.0, 2.0, size=(4, *_config(2).frontend.feature_shape, 1)).astype(np.float32)
    if straight.best_epoch == 2:  # best.keras is then the checkpoint's detector
        np.testing.assert_allclose(best.predict(features, verbose=0)[:, 0],
                                   last.predict(features, verbose=0)[:, 0], atol=1e-6)

    # An interrupted run of the same config (config.json says 1 epoch) resumes the training
    # model, head and optimizer state included, on the same stream.
    train(_config(1), tmp_path / "resumed", tmp_path / "cache", two_source_corpus,
          lambda _: None, 2)
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    saved["training"]["epochs"] = 2
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(saved))
    lines.clear()
    train(_config(2), tmp_path / "resumed", tmp_path / "cache", two_source_corpus,
          lines.append, 2)
    assert any(line.startswith("resuming after epoch 1") for line in lines)
    runs = [json.loads((tmp_path / run / "history.json").read_text())
            for run in ("straight", "resumed")]
    for a, b in zip(*runs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["dev_eer"] == pytest.approx(b["dev_eer"])


JAX_CHECK = """
import jax, jax.numpy as jnp, numpy as np
from host_training.model import ModelConfig, build_model
from host_training.source_adversary import SourceAdversaryLoss, SourceGuess, with_source_head
head = SourceGuess(3, units=4)
x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 6)), dtype=jnp.float32)
head.build(x.shape)
for half, moves_head in ((slice(0, 3), True), (slice(3, 6), False)):
    moved = jax.grad(lambda v: jnp.sum(head(v)[:, half] ** 2))(x)
    assert (float(jnp.abs(moved).max()) > 0) == (not moves_head)
model = with_source_head(build_model((100, 40), ModelConfig(stem_channels=4, blocks=1,
                                                             dense_units=8)), 3)
model.compile(optimizer="adam", loss=SourceAdversaryLoss(0.3, 0.1))
x = np.random.default_rng(0).normal(size=(16, 100, 40, 1)).astype("float32")
y = np.stack([np.r_[np.ones(8), np.zeros(8)], np.r_[-np.ones(8), np.arange(8) % 3]], 1)
loss = model.fit(x, y.astype("float32"), epochs=1, verbose=0).history["loss"][0]
print("ok" if np.isfinite(loss) else "nan")
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (the jax extra)")
def test_the_head_routes_its_gradients_and_trains_on_jax() -> None:
    assert on_jax_cpu("-c", JAX_CHECK).strip().splitlines()[-1] == "ok"


def test_one_bona_fide_source_is_refused_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from host_training.cli import main
    from host_training.cli_options import EXIT_INPUT_ERROR

    for split in ("train", "dev"):
        for key in ("bonafide", "spoof/buzz"):
            (tmp_path / "corpus" / split / key).mkdir(parents=True)
            for i in range(2):
                sf.write(tmp_path / "corpus" / split / key / f"{i}.wav",
                         speech_like(1.0, seed=i), 16000)
    (tmp_path / "c.toml").write_text("[training]\nepochs = 1\nsource_adversary_weight = 0.3\n")
    result = CliRunner().invoke(main, [
        "train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
        "--data", str(tmp_path / "corpus"), "--cache", str(tmp_path / "cache"),
        "--workers", "1"])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert result.output.splitlines().count(
        "edge-train: error: source_adversary_weight needs bona fide clips of 2 or more sources; "
        "the training clips have 1") == 1
    assert "Traceback" not in result.output
