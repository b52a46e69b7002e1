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


def test_per_source_tells_a_rejected_channel_from_spoofs_that_pass_beside_real_speech() -> None:
    from host_training.evaluate import MIN_SOURCE_CLIPS, SMALL_SOURCES, markdown_table

    rows = []  # (speaker, key, score)
    # page A: its real speech scores high (rejected), its spoofs higher still: separable
    rows += [("EXT_pageA_unk", "bonafide", 0.6)] * 6 + [("EXT_pageA_unk", "spoof", 0.9)] * 6
    # page B: its spoofs score like its real speech
    rows += [("EXT_pageB_unk", "bonafide", s) for s in (0.1, 0.2, 0.3, 0.4, 0.5)]
    rows += [("EXT_pageB_unk", "spoof", s) for s in (0.15, 0.25, 0.35, 0.45, 0.55)]
    # two speakers named a clip or two at a time share one row
    rows += [("EXT_m1", "bonafide", 0.1), ("EXT_m1", "spoof", 0.8), ("EXT_f2", "spoof", 0.2)]
    rows = rows[12:22] + rows[:12] + rows[22:]  # sources come out sorted, whatever the order
    utterances = [Utterance(Path(f"{i}.flac"), key, "-" if key == "bonafide" else "tts", spk)
                  for i, (spk, key, _) in enumerate(rows)]
    scores = np.array([score for *_, score in rows])
    sources = split_metrics(utterances, scores, threshold=0.5)["per_source"]
    assert list(sources) == ["EXT_pageA", "EXT_pageB", SMALL_SOURCES]
    a, b, small = sources["EXT_pageA"], sources["EXT_pageB"], sources[SMALL_SOURCES]
    assert (a["bonafide"], a["spoof"]) == (6, 6)
    assert a["bonafide_rejected"] == 1.0 and a["eer_within"] == 0.0
    assert b["bonafide_rejected"] == pytest.approx(1 / 5)
    assert b["spoof_accepted"] == pytest.approx(4 / 5) and b["eer_within"] >= 0.4
    assert (small["bonafide"], small["spoof"]) == (1, 2) and 3 < MIN_SOURCE_CLIPS
    assert small["spoof_accepted"] == pytest.approx(1 / 2)
    table = markdown_table({"dev": split_metrics(utterances, scores, threshold=0.5)})
    assert "| EXT_pageA | 6 | 100.0 | 6 | 0.0 | 0.00 |" in table
    # a single small source keeps its own name; without bona fide clips it has no rates
    lone = split_metrics(utterances[10:22] + utterances[-1:], np.r_[scores[10:22], scores[-1:]],
                         0.5)["per_source"]
    assert lone["EXT_f2"]["bonafide_rejected"] is None and lone["EXT_f2"]["eer_within"] is None


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
