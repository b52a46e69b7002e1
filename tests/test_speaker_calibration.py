"""The host step that sets the speaker embedder's cohort thresholds and the owner spoof
threshold: its pieces on synthetic scores (the real run reads the corpora)."""

from __future__ import annotations

import numpy as np

from edge_runtime.speech_presence import BONAFIDE, NOSPEECH
from host_training.sasv_trials import NONTARGET, SPOOF, TARGET
from host_training.speaker_calibration import (
    TrialScores,
    choose_spoof_threshold,
    eer_percent,
    lock_scores,
    split_speakers,
    threshold_at_far,
)


def test_the_speakers_split_into_two_disjoint_seeded_halves() -> None:
    speakers = [f"s{i}" for i in range(9)]
    first, second = split_speakers(speakers)
    assert first | second == set(speakers) and not first & second
    assert abs(len(first) - len(second)) <= 1
    assert split_speakers(reversed(speakers)) == (first, second)  # order does not matter


def test_threshold_at_far_accepts_at_most_that_share() -> None:
    nontarget = np.arange(1000, dtype=float)
    threshold = threshold_at_far(nontarget, 0.01)
    assert np.sum(nontarget >= threshold) == 10


def scores(spoof_scores, speaker_scores, kinds, labels=None) -> TrialScores:
    n = len(kinds)
    return TrialScores(kind=np.array(kinds), speaker=np.array(["a"] * n),
                       spoof_score=np.array(spoof_scores, dtype=float),
                       label=np.array(labels or [BONAFIDE] * n),
                       speaker_score=np.array(speaker_scores, dtype=float),
                       similarity=np.array(speaker_scores, dtype=float))


def test_the_lock_rule_rejects_no_speech_and_spoof_scores_whatever_the_voice() -> None:
    trials = scores([0.1, 0.9, 0.1], [5.0, 5.0, 5.0], [TARGET, SPOOF, TARGET],
                    [BONAFIDE, BONAFIDE, NOSPEECH])
    assert list(lock_scores(trials, 0.5)) == [5.0, -np.inf, -np.inf]


def test_the_owner_spoof_threshold_is_the_one_that_separates_best() -> None:
    # Targets carry spoof scores up to 0.6 and clones of them from 0.7 up, all of one voice:
    # only a spoof threshold between the two separates them.
    rng = np.random.default_rng(0)
    target = rng.uniform(0.0, 0.6, 50)
    clone = rng.uniform(0.7, 1.0, 50)
    trials = scores(np.concatenate([target, clone, rng.uniform(0, 1, 50)]),
                    np.concatenate([rng.normal(5, 1, 100), rng.normal(-5, 1, 50)]),
                    [TARGET] * 50 + [SPOOF] * 50 + [NONTARGET] * 50)
    threshold, eer = choose_spoof_threshold(trials, np.ones(150, dtype=bool))
    assert 0.6 <= threshold <= 0.7 and eer == 0.0
    assert eer_percent(np.array([1.0]), np.array([-np.inf])) == 0.0
