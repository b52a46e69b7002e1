"""The shipped speaker embedder: loads with its card, tells voices apart, refuses a card that
does not match; the host export reproduces Resemblyzer's encoder (slow, needs torch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.audio import load_audio
from edge_runtime.errors import AudioError, ModelError
from edge_runtime.owners import Owner
from edge_runtime.speaker import SpeakerEmbedder, cosine, default_speaker_model_path, unit
from edge_runtime.speaker_score import SCALE_AS_NORM, SpeakerScorer
from edge_runtime.verify import OwnerVerifier
from tests.conftest import SAMPLES

COHORT_FILE = json.loads(default_speaker_model_path().with_suffix(".json").read_text())[
    "score_normalisation"]["cohort_file"]


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return SpeakerEmbedder()


def test_one_voice_is_closer_to_itself_than_to_another(embedder: SpeakerEmbedder) -> None:
    lj = load_audio(SAMPLES / "bonafide_ljspeech.flac")
    other = load_audio(SAMPLES / "bonafide_librispeech_198-209-0000.flac")
    half = lj.shape[0] // 2
    first, second = embedder.embed(lj[:half]), embedder.embed(lj[half:])
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(first, embedder.embed(lj[:half]))  # deterministic
    assert cosine(first, second) > cosine(first, embedder.embed(other))
    owner = Owner(name="lj", embedding=first, threshold=embedder.threshold,
                  model_sha256=embedder.card.sha256, clips=1, enrolled="-",
                  score_scale=embedder.scorer.scale)
    verifier = OwnerVerifier(embedder, owner)
    assert embedder.scorer.scale == SCALE_AS_NORM  # the shipped card carries its cohort
    assert verifier.check(lj[half:]).is_owner
    assert not verifier.check(other).is_owner


def test_silence_has_no_voice_to_describe(embedder: SpeakerEmbedder) -> None:
    with pytest.raises(AudioError, match="no voice"):
        embedder.embed(np.zeros(32000, dtype=np.float32))
    with pytest.raises(ValueError):
        unit(np.zeros(4))


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    source = default_speaker_model_path()
    shutil.copy(source, tmp_path / source.name)
    shutil.copy(source.with_suffix(".json"), tmp_path / source.with_suffix(".json").name)
    shutil.copy(source.parent / COHORT_FILE, tmp_path / COHORT_FILE)
    return tmp_path / source.name


def test_the_cohort_must_be_the_one_on_the_card(model_copy: Path) -> None:
    assert SpeakerEmbedder(model_copy).scorer.cohort is not None
    cohort = model_copy.parent / COHORT_FILE
    np.save(cohort, np.load(cohort)[:-1], allow_pickle=False)
    with pytest.raises(ModelError, match="cohort was changed"):
        SpeakerEmbedder(model_copy)
    cohort.unlink()
    with pytest.raises(ModelError, match="cannot read the speaker cohort"):
        SpeakerEmbedder(model_copy)


def test_as_norm_is_the_mean_of_both_sides_z_scores() -> None:
    rng = np.random.default_rng(0)
    cohort = rng.normal(size=(50, 8))
    scorer = SpeakerScorer(cohort, top=10)
    owner, test = unit(rng.normal(size=8)), unit(rng.normal(size=8))
    unit_cohort = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)

    def side(vector: np.ndarray) -> tuple[float, float]:
        closest = np.sort(unit_cohort @ vector)[-10:]
        return closest.mean(), closest.std()

    raw = float(owner @ test)
    (mean_o, std_o), (mean_t, std_t) = side(owner), side(test)
    expected = 0.5 * ((raw - mean_o) / std_o + (raw - mean_t) / std_t)
    assert scorer.score(raw, test, scorer.stats(owner)) == pytest.approx(expected, rel=1e-5)
    assert SpeakerScorer().score(raw, test, None) == raw  # no cohort: the cosine


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sha256", "0" * 64, "does not match its card"),
    ("input", {"scale": 0.5, "zero_point": 3}, "float32 but its card"),
    ("speaker_frontend", {"loudness": -30}, "invalid speaker_frontend"),
    ("role", "spoof", "not a 'speaker_embedding' model"),
])
def test_a_card_that_does_not_match_is_refused(model_copy: Path, field: str, value: object,
                                               message: str) -> None:
    card_path = model_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card[field] = value
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=message):
        SpeakerEmbedder(model_copy)


@pytest.mark.slow
def test_keras_rebuild_reproduces_resemblyzer_and_keeps_weights_int8(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("resemblyzer")
    pytest.importorskip("tensorflow")
    from host_training.speaker_export import (
        build_keras_embedder,
        convert_int8_weights,
        float_weight_tensors,
    )
    from host_training.speaker_weights import load_weights, reference_embeddings

    weights = load_weights()
    partials = np.abs(np.random.default_rng(0).normal(size=(2, 12, 40))).astype(np.float32)
    scale = np.linspace(0.5, 2.0, 40).astype(np.float32)
    model = build_keras_embedder(weights, 12, 40, scale)
    keras_out = np.asarray(model(partials[..., None]))
    assert np.allclose(keras_out, reference_embeddings(weights, partials), atol=1e-4)
    path = tmp_path / "spk.tflite"
    path.write_bytes(convert_int8_weights(model))
    assert float_weight_tensors(path) == []
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())  # all float
    assert float_weight_tensors(path)  # the check sees a float weight matrix
