"""On-the-fly waveform augmentation, seeded; each effect has a probability in the config."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    gain_prob: float = 0.8
    gain_db: float = 12.0
    noise_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    trim_prob: float = 0.5
    trim_threshold_db: float = 40.0


def random_gain(audio: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    gain = 10.0 ** (rng.uniform(-max_db, max_db) / 20.0)
    out = audio * gain
    peak = np.max(np.abs(out)) if out.size else 0.0
    return out / peak * 0.99 if peak > 0.99 else out


def add_white_noise(audio: np.ndarray, rng: np.random.Generator,
                    snr_range: tuple[float, float]) -> np.ndarray:
    power = float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    snr = rng.uniform(*snr_range)
    noise = rng.standard_normal(audio.shape[0]) * np.sqrt(power / 10.0 ** (snr / 10.0))
    return (audio + noise).astype(np.float32)


def trim_silence(audio: np.ndarray, threshold_db: float, frame: int = 400) -> np.ndarray:
    """Drops leading/trailing frames more than ``threshold_db`` below the loudest frame, so
    the amount of silence around an utterance cannot tell the classes apart."""
    count = audio.shape[0] // frame
    if count < 3:
        return audio
    energy = (audio[: count * frame].reshape(count, frame).astype(np.float64) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    loud = np.flatnonzero(level > level.max() - threshold_db)
    start, stop = loud[0] * frame, (loud[-1] + 1) * frame
    trimmed = audio[start:stop]
    return trimmed if trimmed.shape[0] >= frame * 3 else audio


def augment(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    out = audio.astype(np.float32, copy=True)
    if rng.random() < config.trim_prob:
        out = trim_silence(out, config.trim_threshold_db)
    if rng.random() < config.noise_prob:
        out = add_white_noise(out, rng, config.noise_snr_db)
    if rng.random() < config.gain_prob:
        out = random_gain(out, rng, config.gain_db)
    return out.astype(np.float32)
