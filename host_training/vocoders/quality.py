"""How close twins are to their sources: mel L1 and log-spectral distance, with floors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_runtime.audio import rms
from host_training.vocoders.config import PEAK, VocoderConfig
from host_training.vocoders.networks import log_mel


def log_spectral_distance(reference: np.ndarray, test: np.ndarray, n_fft: int = 1024,
                          hop: int = 160) -> float:
    """Mean over frames of the RMS dB difference of the power spectra (speech frames only:
    frames more than 60 dB under the reference's loudest are left out)."""
    from scipy.signal import stft

    _, _, a = stft(reference, nperseg=n_fft, noverlap=n_fft - hop)
    _, _, b = stft(test, nperseg=n_fft, noverlap=n_fft - hop)
    pa = np.abs(a) ** 2 + 1e-10
    pb = np.abs(b) ** 2 + 1e-10
    energy = 10 * np.log10(pa.sum(axis=0))
    keep = energy > energy.max() - 60
    difference = 10 * np.log10(pa[:, keep]) - 10 * np.log10(pb[:, keep])
    return float(np.mean(np.sqrt(np.mean(difference ** 2, axis=0))))


def mel_l1(reference: np.ndarray, test: np.ndarray, config: VocoderConfig,
           floor_db: float | None = None) -> float:
    """Mean |log-mel difference| (natural log, the vocoder's own analysis) on the reference's
    peak scale: both clips are scaled by the same gain, so a level mismatch counts.

    With ``floor_db``, both log-mels are first raised to the reference's loudest bin minus
    that many dB, so near-empty bands (FSDD has nothing above 4 kHz) and digital silence, where
    any noise floor is a large log difference, do not dominate the figure.
    """
    import tensorflow as tf

    gain = PEAK / max(float(np.max(np.abs(reference))), 1e-9)
    length = max(config.n_fft, math.ceil(len(reference) / config.hop) * config.hop)
    pair = np.zeros((2, length), np.float32)
    pair[0, :len(reference)] = reference * gain
    pair[1, :len(test)] = test[:len(reference)] * gain
    mel = log_mel(tf.constant(pair), config).numpy()
    frames = math.ceil(len(reference) / config.hop)
    mel = mel[:, :frames]
    if floor_db is not None:
        mel = np.maximum(mel, mel[0].max() - floor_db / 20 * math.log(10))
    return float(np.mean(np.abs(mel[0] - mel[1])))


def quality_report(sources: Sequence[np.ndarray], twins: Sequence[np.ndarray],
                   config: VocoderConfig, seed: int = 0) -> dict[str, float]:
    """Mean mel L1 and LSD of twins against their sources, and the same figures for two
    references a working vocoder must beat by far: RMS-matched white noise, and the source's
    own spectrum with its time order scrambled (speech-like spectra in the wrong place)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[float]] = {k: [] for k in (
        "mel_l1", "mel_l1_60db", "lsd_db", "noise_mel_l1", "noise_mel_l1_60db", "noise_lsd_db",
        "shuffled_mel_l1", "shuffled_mel_l1_60db")}
    for source, twin in zip(sources, twins, strict=True):
        noise = rng.standard_normal(len(source)).astype(np.float32)
        noise *= rms(source) / max(rms(noise), 1e-12)
        hop = config.hop
        blocks = [source[i:i + hop] for i in range(0, len(source), hop)]
        shuffled = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        for name, other in (("", twin), ("noise_", noise), ("shuffled_", shuffled)):
            rows[f"{name}mel_l1"].append(mel_l1(source, other, config))
            rows[f"{name}mel_l1_60db"].append(mel_l1(source, other, config, floor_db=60.0))
        rows["lsd_db"].append(log_spectral_distance(source, twin))
        rows["noise_lsd_db"].append(log_spectral_distance(source, noise))
    return {k: float(np.mean(v)) for k, v in rows.items()}
