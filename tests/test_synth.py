"""Vocoded twins of bona fide speech: each vocoder, and the `edge-train synth` corpus writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from host_training import synth
from host_training.augment import band_limit
from host_training.cli import main
from host_training.datasets import load_split, summarize
from tests.conftest import speech_like

RATE = 16000
CLIP = speech_like(1.2, seed=4)
INSTALLED = synth.available_vocoders()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def _needs(name: str) -> None:
    if name not in INSTALLED:
        pytest.skip(f"{name} needs packages of the train extra")


@pytest.mark.parametrize("name", sorted(synth.VOCODERS))
def test_vocoder_twin_is_finite_same_length_rms_matched_and_different(name: str) -> None:
    _needs(name)
    out = synth.vocode(CLIP, RATE, name, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == CLIP.shape
    assert np.all(np.isfinite(out))
    assert _rms(out) == pytest.approx(_rms(CLIP), rel=1e-3)
    # A copy-synthesis keeps the envelope but not the waveform.
    assert abs(np.corrcoef(out, CLIP)[0, 1]) < 0.9
    assert np.max(np.abs(out - CLIP)) > 0.05


@pytest.mark.parametrize("name", sorted(synth.VOCODERS))
def test_vocoder_is_reproducible_from_seed(name: str) -> None:
    _needs(name)
    first = synth.vocode(CLIP, RATE, name, np.random.default_rng(3))
    np.testing.assert_array_equal(first, synth.vocode(CLIP, RATE, name, np.random.default_rng(3)))


@pytest.mark.parametrize("name", sorted(synth.VOCODERS))
def test_twin_keeps_the_spectral_envelope(name: str) -> None:
    """Energy per band of the twin follows the source (the same words, the same voice)."""
    _needs(name)
    from scipy import signal

    out = synth.vocode(CLIP, RATE, name, np.random.default_rng(1))
    _, source = signal.welch(CLIP, RATE, nperseg=512)
    _, twin = signal.welch(out, RATE, nperseg=512)
    edges = np.arange(0, 200, 25)
    bands = np.add.reduceat(source, edges), np.add.reduceat(twin, edges)
    levels = [10 * np.log10(b + 1e-20) for b in bands]
    assert np.corrcoef(*levels)[0, 1] > 0.8


def test_narrowband_source_gives_narrowband_twin() -> None:
    narrow = band_limit(CLIP, np.random.default_rng(0), (8000,))
    assert synth.is_narrowband(narrow, RATE) and not synth.is_narrowband(CLIP, RATE)
    for name in INSTALLED:
        assert synth.is_narrowband(synth.vocode(narrow, RATE, name, np.random.default_rng(0)),
                                   RATE), name


def test_loud_twin_is_scaled_down_rather_than_clipped() -> None:
    _needs("griffinlim")
    loud = (CLIP / np.max(np.abs(CLIP)) * 0.99).astype(np.float32)
    out = synth.vocode(loud, RATE, "griffinlim", np.random.default_rng(0))
    assert np.max(np.abs(out)) <= 0.999 + 1e-6


def test_bad_requests_are_refused() -> None:
    with pytest.raises(synth.SynthError, match="unknown vocoder"):
        synth.vocode(CLIP, RATE, "wavenet", np.random.default_rng(0))
    with pytest.raises(synth.SynthError, match="unknown vocoder"):
        synth.check_vocoders(["world", "nope"])
    with pytest.raises(synth.SynthError, match="at least 50 ms"):
        synth.vocode(CLIP[:100], RATE, "griffinlim", np.random.default_rng(0))


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "protocols").mkdir(parents=True)
    (root / "train" / "flac").mkdir(parents=True)
    lines = []
    for index, (key, seed) in enumerate((("bonafide", 1), ("spoof", 2), ("bonafide", 3))):
        utt = f"UTT_{index}"
        sf.write(root / "train" / "flac" / f"{utt}.flac", speech_like(0.8, seed=seed), RATE)
        system = "-" if key == "bonafide" else "tts"
        lines.append(f"SPK_{index % 2} {utt} - {system} {key}")
    (root / "protocols" / "train.txt").write_text("\n".join(lines) + "\n")
    return root


def test_cli_writes_a_loadable_corpus_and_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "twins"
    vocoders = ",".join(v for v in ("griffinlim", "lpc") if v in INSTALLED)
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--data", str(tiny_corpus), "--split", "train",
                                  "--out", str(out), "--vocoders", vocoders])
    assert result.exit_code == 0, result.output
    count = len(vocoders.split(","))
    utts = load_split(out, "train")
    assert summarize(utts) == {"files": 2 * count, "bonafide": 0, "spoof": 2 * count,
                               "systems": {f"synth_{v}": 2 for v in vocoders.split(",")}}
    assert {u.speaker for u in utts} == {"SPK_0"}  # both bona fide clips are SPK_0's
    for utterance in utts:
        audio, rate = sf.read(utterance.path, dtype="float32")
        assert rate == RATE and audio.shape == (int(0.8 * RATE),)
    again = runner.invoke(main, ["synth", "--data", str(tiny_corpus), "--out", str(out),
                                 "--vocoders", vocoders])
    assert again.exit_code == 0 and f"0 twins written, {2 * count} already there" in again.output
    assert len(load_split(out, "train")) == 2 * count
    # A twin whose file was lost is made again, and listed once.
    first = utts[0].path
    first.unlink()
    redo = runner.invoke(main, ["synth", "--data", str(tiny_corpus), "--out", str(out),
                                "--vocoders", vocoders])
    assert redo.exit_code == 0 and "1 twins written" in redo.output
    assert first.exists()
    assert sorted(u.path for u in load_split(out, "train")) == sorted(u.path for u in utts)


def test_cli_bad_input_exits_2_with_one_line(tiny_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--data", str(tiny_corpus), "--out",
                                  str(tmp_path / "o"), "--vocoders", "nope"])
    assert result.exit_code == 2 and "unknown vocoder" in result.output
    result = runner.invoke(main, ["synth", "--data", str(tmp_path / "missing"), "--out",
                                  str(tmp_path / "o"), "--vocoders", "griffinlim"])
    assert result.exit_code == 2 and "error:" in result.output


def test_cli_reports_an_unreadable_clip_and_keeps_the_rest(tiny_corpus: Path,
                                                           tmp_path: Path) -> None:
    (tiny_corpus / "train" / "flac" / "UTT_2.flac").write_bytes(b"not audio")
    out = tmp_path / "twins"
    result = CliRunner().invoke(main, ["synth", "--data", str(tiny_corpus), "--out", str(out),
                                       "--vocoders", "griffinlim"])
    assert result.exit_code == 2
    assert "UTT_2.flac" in result.output
    assert [u.path.name for u in load_split(out, "train")] == ["UTT_0_griffinlim.flac"]


@pytest.mark.slow
def test_cli_parallel_jobs_match_serial(tiny_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for jobs in (1, 2):
        result = runner.invoke(main, ["synth", "--data", str(tiny_corpus), "--out",
                                      str(tmp_path / f"j{jobs}"), "--vocoders", "griffinlim",
                                      "--jobs", str(jobs)])
        assert result.exit_code == 0, result.output
    for name in ("UTT_0_griffinlim.flac", "UTT_2_griffinlim.flac"):
        np.testing.assert_array_equal(sf.read(tmp_path / "j1" / "train" / "flac" / name)[0],
                                      sf.read(tmp_path / "j2" / "train" / "flac" / name)[0])
