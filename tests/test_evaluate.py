"""Evaluation helpers: per-attack metrics, degradation conditions and shortcut cues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host_training.datasets import Utterance
from host_training.evaluate import CONDITIONS, degrade, split_metrics
from host_training.shortcuts import cue_eer, edge_silence_seconds, shortcut_report, spearman
from tests.conftest import speech_like


def _utts(keys: list[str], systems: list[str]) -> list[Utterance]:
    return [Utterance(Path(f"{i}.flac"), k, s, "spk") for i, (k, s) in
            enumerate(zip(keys, systems, strict=True))]


def test_split_metrics_per_attack_against_all_bonafide() -> None:
    utterances = _utts(["bonafide"] * 4 + ["spoof"] * 4, ["-"] * 4 + ["a", "a", "b", "b"])
    # Attack a is perfectly separated, attack b sits inside the bona fide scores.
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.95, 0.15, 0.35])
    result = split_metrics(utterances, scores, threshold=0.5)
    assert result["per_attack"]["a"]["eer"] == 0.0
    assert result["per_attack"]["b"]["eer"] >= 0.25
    assert result["per_attack"]["b"]["missed_at_threshold"] == 1.0
    assert result["accuracy"] == pytest.approx(6 / 8)
    assert result["bonafide_rejected"] == 0.0 and result["spoof_accepted"] == 0.5


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_changes_audio_and_keeps_shape(condition: str) -> None:
    clip = speech_like(1.0) * 0.5
    degraded = degrade([clip], condition, 16000)[0]
    assert degraded.shape == clip.shape and degraded.dtype == np.float32
    assert not np.allclose(degraded, clip)


def test_gain_condition_is_exact_and_noise_has_its_snr() -> None:
    clip = speech_like(2.0) * 0.1
    assert np.allclose(degrade([clip], "gain-10db", 16000)[0], clip * 10 ** (-10 / 20), atol=1e-7)
    noisy = degrade([clip], "noise-10db", 16000)[0]
    snr = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean((noisy - clip) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)
    with pytest.raises(ValueError, match="unknown condition"):
        degrade([clip], "reverb", 16000)


def test_shortcut_cues() -> None:
    labels = np.array([False] * 50 + [True] * 50)
    loud = np.concatenate([np.zeros(50), np.ones(50)])
    assert cue_eer(loud, labels) == 0.0
    assert cue_eer(-loud, labels) == 0.0  # either direction counts for the shortcut
    assert spearman(np.arange(10.0), np.arange(10.0) ** 2) == pytest.approx(1.0)
    silence = np.zeros(16000, dtype=np.float32)
    clip = np.concatenate([silence, speech_like(1.0), silence])
    assert edge_silence_seconds(clip, 16000) == pytest.approx(2.0, abs=0.1)
    waves = [speech_like(1.0 + i * 0.1, seed=i) for i in range(6)]
    report = shortcut_report(waves, np.array([0, 0, 0, 1, 1, 1], bool),
                             np.linspace(0, 1, 6), 16000)
    assert report["duration_s"]["eer_alone"] == 0.0
