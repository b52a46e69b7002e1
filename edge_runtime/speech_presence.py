"""Speech presence: is there human speech in a window at all, before asking if it is spoofed.

The spoof detector is trained on speech only; for a tone, music or noise its score means
nothing, and "bona fide" must never be the answer for them. A separate tiny int8 model, the
speech gate (``models/speech_gate.tflite`` and its card), scores each window the detector
scores. It shares the detector's STFT: its own (mel) bands are pooled from the same power
frames, so a window costs one FFT pass, not two.

A clip or utterance is "no speech" when the mean speech probability of its gated windows is
below the gate's threshold (digital silence counts as no speech), whatever the detector says;
only then is the spoof score turned into "bonafide" or "spoof".

The gate does not score every window the detector scores (``GateSchedule``): the detector's
windows overlap by half or more, so gated windows one window length apart still tile all the
audio (every second window of ``classify``, every eighth of ``run`` at a 0.5 s hop), and the
gate's cost per window falls by as much. The first window, the last one and every window
after a silent one are always gated, so no stretch of audio reaches a decision without a gated
window covering it.
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


def gate_stride(window_samples: int, hop_samples: int) -> int:
    """How many of the detector's windows, ``hop_samples`` apart, one gated window stands for:
    as many as fit in one window, so that gated windows, ``stride * hop`` apart, still touch
    and tile the audio (2 for classify's 50 % hop, 8 for run's 0.5 s hop on 4 s windows)."""
    return max(1, window_samples // max(1, hop_samples))


class GateSchedule:
    """Which of the detector's windows the gate scores, window by window.

    ``due(last)`` is asked once per window with signal: the first window, the last one
    (``last=True``) and every ``stride``-th are due. ``skip()`` is called for a window with no
    signal: the next window is then due, since the gated window before the gap no longer
    touches it. ``reset()`` starts over (a new clip or utterance).
    """

    def __init__(self, stride: int) -> None:
        self.stride = max(1, stride)
        self._ungated = self.stride - 1  # windows since the last gated one

    def due(self, last: bool = False) -> bool:
        if last or self._ungated >= self.stride - 1:
            self._ungated = 0
            return True
        self._ungated += 1
        return False

    def skip(self) -> None:
        self._ungated = self.stride - 1

    def reset(self) -> None:
        self.skip()


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
        """The rule for a clip or an utterance: mean speech probability of its gated windows
        >= threshold; none gated (no signal) is no speech."""
        return bool(window_scores) and float(np.mean(window_scores)) >= self.threshold


def label_for(spoof_score: float, spoof_threshold: float, speech: bool) -> str:
    """The one rule that turns scores into a decision: no speech first, then the spoof score."""
    if not speech:
        return NOSPEECH
    return SPOOF if spoof_score >= spoof_threshold else BONAFIDE
