"""Audio -> the speaker embedder's input: 40 mel-band power frames in 1.6 s partials, NumPy only.

The embedder is Resemblyzer's GE2E speaker encoder (``models/speaker_embedder.md``). Its front
end, as it was trained:

- loudness raised (never lowered) to -30 dBFS RMS,
- long silences cut (Resemblyzer asks webrtcvad; here an energy rule on the same 30 ms blocks
  with the same smoothing and dilation, so the board needs no extra package),
- mel *power* (not log) in 40 Slaney bands, 25 ms Hann window, 10 ms hop: the kit's
  ``frontend.Frontend`` power frames pooled through ``frontend.filterbank`` ("valid" framing, as
  everywhere in the kit; Resemblyzer centre-pads, which moves only the first and last frame),
- partials of 160 frames (1.6 s), 1.3 partials per second of speech, the last kept when it is at
  least 75 % covered, zero-padded.

The STFT parameters live on the card's ``frontend`` (a FrontendConfig, checked against the
model's input shape); the rest on its ``speaker_frontend`` (``SpeakerFrontendConfig``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from edge_runtime.frontend import Frontend, FrontendConfig, check_known_fields, filterbank

# The STFT and bands the embedder was trained on; window_seconds makes one partial exactly
# 160 frames with valid framing (159 hops + one window).
EMBEDDER_FRONTEND = FrontendConfig(
    n_fft=400, win_length=400, hop_length=160, n_bands=40, fmin=0.0, fmax=8000.0,
    scale="mel", normalization="none", window_seconds=1.615,
)


@dataclass(frozen=True)
class SpeakerFrontendConfig:
    """What turns a clip into partials, beyond the STFT (recorded on the embedder's card)."""

    loudness_dbfs: float = -30.0  # RMS target; quieter clips are raised to it, louder kept
    partials_per_second: float = 1.3
    min_coverage: float = 0.75  # the last partial is kept if this much of it is audio
    vad_block_seconds: float = 0.03
    vad_floor_db: float = 40.0  # blocks this far below the loudest (95th pct) block are silence
    vad_smoothing_blocks: int = 8
    vad_max_silence_blocks: int = 6
    max_partials: int = 8  # a decision's cost is bounded: longer clips are subsampled evenly

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SpeakerFrontendConfig:
        check_known_fields(cls, values, "speaker front-end parameters")
        return cls(**values)


def raise_loudness(audio: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scales ``audio`` up to ``target_dbfs`` RMS; never down (as Resemblyzer does)."""
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    if power <= 0.0:
        return audio
    change_db = target_dbfs - 10.0 * np.log10(power)
    if change_db <= 0.0:
        return audio
    return (audio * np.float32(10.0 ** (change_db / 20.0))).astype(np.float32)


def voiced_samples(audio: np.ndarray, rate: int, config: SpeakerFrontendConfig) -> np.ndarray:
    """``audio`` without its long silences (Resemblyzer's trim_long_silences, energy-based)."""
    block = round(config.vad_block_seconds * rate)
    count = audio.shape[0] // block
    if count < 2:
        return audio
    blocks = audio[: count * block].reshape(count, block).astype(np.float64)
    level = 10.0 * np.log10(np.mean(blocks * blocks, axis=1) + 1e-12)
    voiced = (level >= np.percentile(level, 95) - config.vad_floor_db).astype(np.float64)
    width = config.vad_smoothing_blocks
    padded = np.concatenate([np.zeros((width - 1) // 2), voiced, np.zeros(width // 2)])
    smoothed = np.convolve(padded, np.ones(width) / width, mode="valid")
    mask = np.round(smoothed).astype(bool)
    # Dilation by the allowed silence: short pauses between words stay.
    reach = config.vad_max_silence_blocks // 2
    kernel = np.ones(config.vad_max_silence_blocks + 1)
    mask = np.convolve(mask.astype(np.float64), kernel, mode="full")[reach: reach + count] > 0
    kept = np.repeat(mask, block)
    if not kept.any():
        return audio
    return audio[: count * block][kept]


class SpeakerFrontend:
    """Clips (mono float32 at the embedder's rate) -> (partials, 160, 40) mel power frames."""

    def __init__(self, config: FrontendConfig = EMBEDDER_FRONTEND,
                 speaker: SpeakerFrontendConfig | None = None) -> None:
        self.config = config
        self.speaker = speaker or SpeakerFrontendConfig()
        self._stft = Frontend(config)

    @cached_property
    def _filters(self) -> np.ndarray:
        return filterbank(self.config)

    @property
    def partial_frames(self) -> int:
        return self.config.frames_per_window

    def mel_power(self, audio: np.ndarray) -> np.ndarray:
        """(frames, bands) mel power of every whole frame (no loudness or silence step)."""
        power = self._stft.power_frames(audio)
        return (power @ self._filters).astype(np.float32)

    def partial_starts(self, n_frames: int) -> list[int]:
        """First frame of each partial (Resemblyzer's compute_partial_slices, frame units)."""
        size = self.partial_frames
        hop = self.config.hop_length
        step = max(1, round(self.config.sample_rate / self.speaker.partials_per_second / hop))
        starts = list(range(0, max(1, n_frames - size + step + 1), step))
        coverage = (n_frames - starts[-1]) / size
        if coverage < self.speaker.min_coverage and len(starts) > 1:
            starts.pop()
        if len(starts) > self.speaker.max_partials:
            keep = np.linspace(0, len(starts) - 1, self.speaker.max_partials).round()
            starts = [starts[int(i)] for i in keep]
        return starts

    def partials(self, audio: np.ndarray) -> np.ndarray:
        """The embedder's inputs for one clip: (partials, frames, bands) float32."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        audio = raise_loudness(audio, self.speaker.loudness_dbfs)
        audio = voiced_samples(audio, self.config.sample_rate, self.speaker)
        frames = self.mel_power(audio)
        size = self.partial_frames
        starts = self.partial_starts(frames.shape[0])
        needed = starts[-1] + size
        if frames.shape[0] < needed:
            pad = np.zeros((needed - frames.shape[0], frames.shape[1]), dtype=np.float32)
            frames = np.concatenate([frames, pad])
        return np.stack([frames[s: s + size] for s in starts])
