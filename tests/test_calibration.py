"""Calibration: bona fide window scores -> threshold at a target FRR -> written into the
profile, from files or from the microphone."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_runtime.calibration import bonafide_window_scores, calibrate
from edge_runtime.cli import main
from edge_runtime.config import load_profile
from edge_runtime.frontend import FrontendConfig
from edge_runtime.metrics import threshold_at_frr
from edge_runtime.stream import LiveDetector
from tests.conftest import REPO, SAMPLES, asoundrc, speech_like

PROFILE = REPO / "firmware_config" / "voice-lock.toml"


def test_threshold_is_the_metrics_one_at_the_target_frr() -> None:
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 8, size=400)
    result = calibrate(scores, 0.05)
    assert result.threshold == threshold_at_frr(scores, 0.05)
    assert result.measured_frr <= 0.05
    assert result.windows == 400 and result.enough
    assert np.mean(scores >= np.nextafter(result.threshold, -1)) > 0.04  # not needlessly high
    assert not calibrate(scores[:10], 0.05).enough
    with pytest.raises(ValueError):
        calibrate(np.array([]), 0.05)


class SpectralScorer:
    def score_window(self, features: np.ndarray) -> float:
        return float(1 / (1 + np.exp(-(features[:, :20].mean() - features[:, 60:].mean()) / 20)))


def test_window_scores_come_from_the_live_detector_per_recording() -> None:
    def make() -> LiveDetector:
        return LiveDetector(SpectralScorer(), FrontendConfig(), 0.5, hop_seconds=1.0)

    one = [speech_like(7.0, seed=1)]
    two = [speech_like(2.0, seed=2)]
    scores = bonafide_window_scores(make, [one, two])
    detector = make()
    expected = [e.score for e in detector.push(one[0]) + detector.flush() if e.decision is None]
    # The second recording is shorter than a window: scored once, repeat-padded, on its own.
    assert list(scores[: len(expected)]) == expected and len(scores) == len(expected) + 1
    quiet = bonafide_window_scores(make, [[np.zeros(16000 * 5, np.float32)]])
    assert quiet.size == 0


def copy_profile(tmp_path: Path) -> Path:
    path = tmp_path / "lock.toml"
    path.write_text(PROFILE.read_text())
    return path


def test_calibrate_from_files_writes_the_threshold_and_keeps_the_rest(tmp_path: Path) -> None:
    path = copy_profile(tmp_path)
    before = load_profile(path)
    result = CliRunner().invoke(main, ["calibrate", "--config", str(path), "--files",
                                       str(SAMPLES / "bonafide_ljspeech.flac"), "--files",
                                       str(SAMPLES / "bonafide_librispeech_198-209-0000.flac"),
                                       "--target-frr", "0.05"])
    assert result.exit_code == 0, result.output
    assert "written" in result.stdout
    after = load_profile(path)
    assert after.model.threshold is not None and 0.0 < after.model.threshold <= 1.0
    assert after.actions == before.actions and after.smoothing == before.smoothing
    assert "too few to resolve" in result.stderr  # 2 short clips: < 1 / 0.05 windows
    lines = path.read_text().splitlines()
    assert sum(1 for ln in lines if ln.startswith("threshold =")) == 1
    assert [ln for ln in lines if not ln.startswith("threshold =")] == PROFILE.read_text(
    ).splitlines()


def test_calibrated_threshold_rejects_at_most_the_target_share(tmp_path: Path,
                                                                shipped_model_path) -> None:
    from edge_runtime import mic
    from edge_runtime.model import SpoofModel
    from edge_runtime.stream import detector_from_profile

    folder = tmp_path / "owner"
    folder.mkdir()
    import soundfile as sf

    for seed in range(3):
        sf.write(folder / f"take{seed}.wav", speech_like(9.0, seed=seed), 16000)
    path = copy_profile(tmp_path)
    result = CliRunner().invoke(main, ["calibrate", "--config", str(path), "--files",
                                       str(folder), "--target-frr", "0.1"])
    assert result.exit_code == 0, result.output
    profile = load_profile(path)
    model = SpoofModel(shipped_model_path)
    scores = bonafide_window_scores(
        lambda: detector_from_profile(profile, model, model.frontend_config, 0.5),
        # Read as `calibrate --files` and `run --input` read files (DC blocker, blocks).
        [mic.file_chunks(p, model.frontend_config.sample_rate, realtime=False)
         for p in sorted(folder.iterdir())])
    assert scores.size >= 10
    assert np.mean(scores >= profile.model.threshold) <= 0.1


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = copy_profile(tmp_path)
    result = CliRunner().invoke(main, ["calibrate", "--config", str(path), "--dry-run",
                                       "--files", str(SAMPLES / "bonafide_ljspeech.flac")])
    assert result.exit_code == 0 and "not written" in result.stdout
    assert path.read_text() == PROFILE.read_text()


def test_no_speech_is_an_input_error_and_the_profile_is_untouched(tmp_path: Path,
                                                                   write_audio) -> None:
    path = copy_profile(tmp_path)
    quiet = write_audio("quiet.wav", np.zeros(16000 * 3, np.float32))
    result = CliRunner().invoke(main, ["calibrate", "--config", str(path), "--files", str(quiet)])
    assert result.exit_code == 2 and "no speech heard" in result.stderr
    missing = CliRunner().invoke(main, ["calibrate", "--config", str(path), "--files",
                                        str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert path.read_text() == PROFILE.read_text()


def test_calibrate_through_the_microphone(tmp_path: Path) -> None:
    pytest.importorskip("pyaudio")
    import soundfile as sf

    audio, _ = sf.read(SAMPLES / "bonafide_librispeech_198-209-0000.flac", dtype="float32")
    (tmp_path / "mic.raw").write_bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    (tmp_path / ".asoundrc").write_text(asoundrc({"edgemic": tmp_path / "mic.raw"}))
    path = tmp_path / "lock.toml"
    path.write_text('[audio]\ndevice = "edgemic"\nrate = 16000\n\n[model]\nthreads = 1\n')
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "calibrate", "--config", str(path),
         "--seconds", "5"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "recording 5 s from edgemic" in result.stderr
    written = tomllib.loads(path.read_text())
    assert written["audio"] == {"device": "edgemic", "rate": 16000}
    assert written["model"]["threads"] == 1 and 0 < written["model"]["threshold"] <= 1
