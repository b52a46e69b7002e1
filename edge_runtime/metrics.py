"""Detection metrics shared by host evaluation and on-device calibration (NumPy only).

Scores are spoof probabilities: higher means more likely spoofed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ErrorRates:
    eer: float
    threshold: float


def _sweep(bonafide: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-rejection and false-acceptance rates at every distinct threshold.

    A clip is called spoof when score >= threshold. FRR = bona fide called spoof,
    FAR = spoof called bona fide.
    """
    scores = np.concatenate([bonafide, spoof]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(bonafide)), np.ones(len(spoof))])
    order = np.argsort(scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # Thresholds at each score plus one above all: at threshold t = scores[i], the clips
    # below index i are called bona fide.
    spoof_below = np.concatenate([[0], np.cumsum(labels)])
    bona_below = np.concatenate([[0], np.cumsum(1 - labels)])
    thresholds = np.concatenate([scores, [np.inf]])
    keep = np.concatenate([[True], scores[1:] != scores[:-1], [True]])
    far = spoof_below[keep] / max(len(spoof), 1)
    frr = 1.0 - bona_below[keep] / max(len(bonafide), 1)
    return thresholds[keep], frr, far


def det_points(bonafide_scores: np.ndarray,
               spoof_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FRR, FAR) at every distinct threshold, for DET curves."""
    _, frr, far = _sweep(np.asarray(bonafide_scores, dtype=np.float64),
                         np.asarray(spoof_scores, dtype=np.float64))
    return frr, far


def equal_error_rate(bonafide_scores: np.ndarray, spoof_scores: np.ndarray) -> ErrorRates:
    """EER (as a fraction) and the threshold where FRR and FAR cross."""
    bonafide = np.asarray(bonafide_scores, dtype=np.float64)
    spoof = np.asarray(spoof_scores, dtype=np.float64)
    if len(bonafide) == 0 or len(spoof) == 0:
        raise ValueError("EER needs both bona fide and spoof scores")
    thresholds, frr, far = _sweep(bonafide, spoof)
    index = int(np.argmin(np.abs(frr - far)))
    eer = float((frr[index] + far[index]) / 2)
    threshold = float(thresholds[index]) if np.isfinite(thresholds[index]) else 1.0
    return ErrorRates(eer=eer, threshold=threshold)


def threshold_at_frr(bonafide_scores: np.ndarray, target_frr: float) -> float:
    """Lowest threshold that rejects at most ``target_frr`` of the bona fide clips."""
    bonafide = np.sort(np.asarray(bonafide_scores, dtype=np.float64))
    if len(bonafide) == 0:
        raise ValueError("calibration needs at least one bona fide score")
    if not 0.0 <= target_frr < 1.0:
        raise ValueError("target false-rejection rate must be in [0, 1)")
    allowed = int(np.floor(target_frr * len(bonafide)))
    # Called spoof when score >= threshold: put the threshold just above the highest score
    # that must still pass.
    keep_index = len(bonafide) - allowed - 1
    return float(np.nextafter(bonafide[keep_index], np.inf))


def min_dcf(bonafide_scores: np.ndarray, spoof_scores: np.ndarray, p_spoof: float = 0.05,
            c_miss: float = 1.0, c_fa: float = 10.0) -> float:
    """Normalised minimum detection cost, ASVspoof 5 parameters by default.

    ASVspoof 5 (countermeasure track): C_miss = 1, C_fa = 10, pi_spf = 0.05; a miss is a bona
    fide clip rejected, a false alarm a spoof accepted.
    """
    _, frr, far = _sweep(np.asarray(bonafide_scores), np.asarray(spoof_scores))
    p_bona = 1.0 - p_spoof
    cost = c_miss * p_bona * frr + c_fa * p_spoof * far
    default = min(c_miss * p_bona, c_fa * p_spoof)
    return float(cost.min() / default)
