"""Shortcut checks: how well trivial cues separate the classes, and whether the score follows them.

In spoofmix, bona fide clips are quieter than spoofs on average, durations differ by source, and
leading/trailing silence differs by pipeline. A detector that learned those would look good on
one split and fail on the board. These functions measure both sides: the EER that each cue alone
reaches (the bar the model must beat) and the rank correlation between the model's score and
each cue within each class (should be near zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_runtime.audio import level_dbfs
from edge_runtime.metrics import equal_error_rate


def edge_silence_seconds(audio: np.ndarray, rate: int, threshold_db: float = 40.0,
                         frame: int = 400) -> float:
    """Leading plus trailing time more than ``threshold_db`` below the loudest 25 ms frame."""
    count = audio.shape[0] // frame
    if count == 0:
        return 0.0
    energy = (audio[: count * frame].reshape(count, frame).astype(np.float64) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    loud = np.flatnonzero(level > level.max() - threshold_db)
    return float((loud[0] + (count - 1 - loud[-1])) * frame / rate)


def cues(waves: list[np.ndarray], rate: int) -> dict[str, np.ndarray]:
    return {
        "loudness_dbfs": np.array([level_dbfs(w) for w in waves]),
        "duration_s": np.array([w.shape[0] / rate for w in waves]),
        "edge_silence_s": np.array([edge_silence_seconds(w, rate) for w in waves]),
    }


def _rank(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(np.corrcoef(_rank(a), _rank(b))[0, 1])


def cue_eer(cue: np.ndarray, labels: np.ndarray) -> float:
    """EER of a cue used alone as the score, in whichever direction suits it best
    (generous to the shortcut, so beating it means something)."""
    bona, spoof = cue[~labels], cue[labels]
    return min(equal_error_rate(bona, spoof).eer, equal_error_rate(-bona, -spoof).eer)


def shortcut_report(waves: list[np.ndarray], labels: np.ndarray, scores: np.ndarray,
                    rate: int) -> dict[str, Any]:
    labels = np.asarray(labels, dtype=bool)
    report: dict[str, Any] = {}
    for name, cue in cues(waves, rate).items():
        report[name] = {
            "eer_alone": cue_eer(cue, labels),
            "score_correlation_bonafide": spearman(cue[~labels], scores[~labels]),
            "score_correlation_spoof": spearman(cue[labels], scores[labels]),
        }
    return report
