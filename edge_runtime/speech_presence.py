"""Speech presence: is there human speech in a window at all, before asking if it is spoofed.

The spoof detector is trained on speech only; for a tone, music or noise its score means
nothing, and "bona fide" must never be the answer for them. A separate tiny int8 model, the
speech gate (``models/speech_gate.tflite`` and its card), scores each window the detector
scores. It shares the detector's STFT: its own (mel) bands are pooled from the same power
frames, so a window costs one FFT pass, not two.

A clip or utterance is "no speech" when the mean speech probability of its windows is below
the gate's threshold (digital silence counts as no speech), whatever the detector says; only
then is the spoof score turned into "bonafide" or "spoof".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.frontend import STFT_FIELDS, Frontend, FrontendConfig
from edge_runtime.model import SpeechModel

BONAFIDE = "bonafide"
SPOOF = "spoof"
NOSPEECH = "nospeech"
# Bona fide speech, but not the enrolled owner's voice (only where an owner is asked for:
# edge_runtime.verify).
NOTOWNER = "notowner"
DECISIONS = (BONAFIDE, SPOOF, NOSPEECH, NOTOWNER)


class SpeechPresence:
    """The speech gate with its front end, bound to the detector's front end it shares."""

    def __init__(self, model: SpeechModel, detector_frontend: FrontendConfig,
                 threshold: float | None = None) -> None:
        self.model = model
        self.frontend = Frontend(model.frontend_config)
        self.threshold = model.threshold if threshold is None else threshold
        if not self.frontend.shares_stft(detector_frontend):
            differ = [f"{name} {getattr(model.frontend_config, name)!r} (detector "
                      f"{getattr(detector_frontend, name)!r})" for name in STFT_FIELDS
                      if getattr(model.frontend_config, name) != getattr(detector_frontend, name)]
            raise ModelError(
                f"{model.path}: the speech gate's framing differs from the detector's: "
                + ", ".join(differ) + "; retrain the gate for this detector"
            )

    @classmethod
    def load(cls, detector_frontend: FrontendConfig, path: str | Path | None = None,
             threshold: float | None = None, num_threads: int | None = None) -> SpeechPresence:
        return cls(SpeechModel(path, num_threads=num_threads), detector_frontend, threshold)

    @property
    def config(self) -> FrontendConfig:
        return self.frontend.config

    def features_from_power(self, power: np.ndarray) -> np.ndarray:
        """The gate's normalised features of one window, from the detector's power frames."""
        return self.frontend.normalize(self.frontend.log_bands(power))

    def score_power(self, power: np.ndarray) -> float:
        return self.model.score_window(self.features_from_power(power))

    def score_features(self, features: np.ndarray) -> float:
        return self.model.score_window(features)

    def is_speech(self, window_scores: Sequence[float]) -> bool:
        """The rule for a clip or an utterance: mean speech probability >= threshold."""
        return bool(window_scores) and float(np.mean(window_scores)) >= self.threshold


def label_for(spoof_score: float, spoof_threshold: float, speech: bool) -> str:
    """The one rule that turns scores into a decision: no speech first, then the spoof score."""
    if not speech:
        return NOSPEECH
    return SPOOF if spoof_score >= spoof_threshold else BONAFIDE
