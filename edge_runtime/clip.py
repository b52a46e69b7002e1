"""Scoring whole clips: audio -> windows -> features -> model -> one spoof probability."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edge_runtime.audio import load_audio, split_windows
from edge_runtime.frontend import Frontend
from edge_runtime.model import SpoofModel


@dataclass(frozen=True)
class ClipScore:
    score: float
    window_scores: tuple[float, ...]
    label: str


class ClipScorer:
    """Scores files or arrays with one model; a clip's score is the mean over its windows."""

    def __init__(self, model: SpoofModel, threshold: float | None = None,
                 hop_fraction: float = 0.5) -> None:
        self.model = model
        self.frontend = Frontend(model.frontend_config)
        self.threshold = model.threshold if threshold is None else threshold
        config = self.frontend.config
        self.hop_samples = max(1, int(config.window_samples * hop_fraction))

    def label_for(self, score: float) -> str:
        return "spoof" if score >= self.threshold else "bonafide"

    def score_audio(self, audio: np.ndarray) -> ClipScore:
        windows = split_windows(audio, self.frontend.config.window_samples, self.hop_samples)
        scores = [self.model.score_window(self.frontend.window_features(w)) for w in windows]
        score = float(np.mean(scores))
        return ClipScore(score, tuple(scores), self.label_for(score))

    def score_file(self, path: str | os.PathLike[str]) -> ClipScore:
        return self.score_audio(load_audio(path, self.frontend.config.sample_rate))
