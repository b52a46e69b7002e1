"""Threshold calibration from bona fide speech: window scores -> threshold at a target FRR.

The board calls this with the owner's voice through the lock's own microphone
(``edge-detect calibrate``); host training can call the same functions with its dev-set
audio. Scores come from the live detector itself (same gate, hop and features as
``edge-detect run``), so the threshold applies to exactly the numbers it will be compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge_runtime.metrics import threshold_at_frr
from edge_runtime.stream import LiveDetector
from edge_runtime.wording import counted


@dataclass(frozen=True)
class Calibration:
    threshold: float
    target_frr: float
    windows: int  # bona fide windows the threshold was set on
    measured_frr: float  # share of those windows at or above the threshold
    mean_score: float

    @property
    def enough(self) -> bool:
        """True when the target FRR can be resolved: at least 1 / target_frr windows."""
        return self.target_frr > 0 and self.windows * self.target_frr >= 1.0

    def describe(self) -> str:
        return (f"threshold {self.threshold:.6f} at target FRR {self.target_frr:.1%} "
                f"(measured {self.measured_frr:.1%} on "
                f"{counted(self.windows, 'bona fide window')})")


def bonafide_window_scores(make_detector: Callable[[], LiveDetector],
                           recordings: Iterable[Iterable[np.ndarray]]) -> np.ndarray:
    """Scores of every speech window the live detector scores, over each recording.

    Each recording (an iterable of chunks at the model's rate) goes through a fresh detector,
    so one file's audio never leaks into the next one's windows.
    """
    scores: list[float] = []
    for chunks in recordings:
        detector = make_detector()
        for chunk in chunks:
            scores.extend(e.score for e in detector.push(chunk)
                          if e.decision is None and e.score is not None)
        scores.extend(e.score for e in detector.flush()
                      if e.decision is None and e.score is not None)
    return np.asarray(scores, dtype=np.float64)


def calibrate(bonafide_scores: np.ndarray, target_frr: float) -> Calibration:
    """The lowest threshold that rejects at most ``target_frr`` of the bona fide windows."""
    scores = np.asarray(bonafide_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no bona fide speech windows to calibrate on")
    threshold = min(1.0, threshold_at_frr(scores, target_frr))
    return Calibration(
        threshold=threshold,
        target_frr=target_frr,
        windows=int(scores.size),
        measured_frr=float(np.mean(scores >= threshold)),
        mean_score=float(scores.mean()),
    )
