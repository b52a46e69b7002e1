"""Scoring whole clips: audio -> windows -> features -> model -> one spoof probability.

A clip is cut into windows with 50 % overlap (the last one aligned to the clip's end, a short
clip repeat-padded) and its score is the mean spoof probability of its windows. Files are
streamed block by block, so memory does not grow with the clip's length.

Two input policies live here because they are about what can be scored honestly:

- DC offset is removed (a 2 Hz DC blocker at the file's own rate, before resampling). An offset
  carries no evidence about spoofing, but the analysis window leaks it into the lowest mel
  bands, where it moved a bona fide sample's score across the threshold.
- Windows with no signal (every sample within one 16-bit step of zero after DC removal:
  digital silence or a constant level) are not scored: their features are a constant log floor,
  all zeros after window-mean normalisation, so the model's output for them says nothing about
  the recording. With a speech gate, a clip with no window left is "no speech"; without one,
  it is refused with an AudioError ("no signal").

With a speech gate (``SpeechPresence``) the windows its schedule picks (``GateSchedule``:
every second one, the last one and any after a silent one) also get a speech probability,
computed from the same STFT frames; a clip whose mean speech probability is below the gate's
threshold is labelled ``nospeech`` whatever its spoof score.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge_runtime.audio import DCBlocker, display_path, stream_audio, stream_windows
from edge_runtime.errors import AudioError
from edge_runtime.frontend import Frontend
from edge_runtime.model import SpoofModel
from edge_runtime.speech_presence import (
    NOSPEECH,
    GateSchedule,
    SpeechPresence,
    gate_stride,
    label_for,
)

# One step of 16-bit audio: quieter than this is silence in any recording format we read.
NO_SIGNAL_PEAK = 2.0**-15
# Windows of a clip start this share of a window apart (50 % overlap).
CLIP_HOP_FRACTION = 0.5


@dataclass(frozen=True)
class ClipScore:
    score: float | None  # mean spoof probability; None when no window had any signal
    window_scores: tuple[float, ...]
    label: str  # "bonafide", "spoof" or (with a speech gate) "nospeech"
    silent_windows: int = 0
    speech: float | None = None  # mean speech probability (None without a speech gate)
    speech_scores: tuple[float, ...] = ()


def has_signal(window: np.ndarray) -> bool:
    """False for digital silence: every sample within one 16-bit step of zero."""
    return bool(np.max(np.abs(window)) > NO_SIGNAL_PEAK)


def _with_last(windows: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    """Each window with whether it is the last one (one window of lookahead: the windows of
    ``stream_windows`` stay valid after the next is taken)."""
    previous: np.ndarray | None = None
    for window in windows:
        if previous is not None:
            yield previous, False
        previous = window
    if previous is not None:
        yield previous, True


class ClipScorer:
    """Scores files or arrays with one model; a clip's score is the mean over its windows."""

    def __init__(self, model: SpoofModel, threshold: float | None = None,
                 hop_fraction: float = CLIP_HOP_FRACTION,
                 speech: SpeechPresence | None = None) -> None:
        self.model = model
        self.speech = speech
        self.frontend = Frontend(model.frontend_config)
        self.threshold = model.threshold if threshold is None else threshold
        config = self.frontend.config
        self.hop_samples = max(1, int(config.window_samples * hop_fraction))

    def label_for(self, score: float, speech: bool = True) -> str:
        return label_for(score, self.threshold, speech)

    def score_blocks(self, blocks: Iterable[np.ndarray], name: str) -> ClipScore:
        """Scores a clip given as DC-free blocks at the model's rate; ``name`` is for errors."""
        scores: list[float] = []
        speech_scores: list[float] = []
        silent = 0
        window_samples = self.frontend.config.window_samples
        windows = stream_windows(blocks, window_samples, self.hop_samples)
        schedule = (GateSchedule(gate_stride(window_samples, self.hop_samples))
                    if self.speech is not None else None)
        for window, last in _with_last(windows):
            if not has_signal(window):
                silent += 1
                if schedule is not None:
                    schedule.skip()
                continue
            if schedule is None or not schedule.due(last):
                features = self.frontend.window_features(window)
            else:
                # One STFT for both models: the gate pools the detector's power frames.
                power = self.frontend.power_frames(window)
                speech_scores.append(self.speech.score_power(power))
                features = self.frontend.normalize(self.frontend.log_bands(power))
            scores.append(self.model.score_window(features))
        if not scores:
            if silent == 0:
                raise AudioError(f"{name}: contains no audio samples")
            if self.speech is not None:
                return ClipScore(None, (), NOSPEECH, silent, 0.0, ())
            raise AudioError(
                f"{name}: no signal (digital silence or a constant level); nothing to score"
            )
        score = float(np.mean(scores))
        if self.speech is None:
            return ClipScore(score, tuple(scores), self.label_for(score), silent)
        speech = self.speech.is_speech(speech_scores)
        return ClipScore(score, tuple(scores), self.label_for(score, speech), silent,
                         float(np.mean(speech_scores)), tuple(speech_scores))

    def score_audio(self, audio: np.ndarray, name: str = "audio") -> ClipScore:
        """Scores mono audio already at the model's rate (DC removed here, as for files)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(audio)):
            raise AudioError(f"{name}: contains NaN or Inf samples")
        blocker = DCBlocker(self.frontend.config.sample_rate)
        return self.score_blocks([blocker.process(audio)], name)

    def score_file(self, path: str | os.PathLike[str] | bytes) -> ClipScore:
        blocks = stream_audio(path, self.frontend.config.sample_rate, remove_dc=True)
        return self.score_blocks(blocks, display_path(path))
