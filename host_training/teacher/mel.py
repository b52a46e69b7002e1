"""Whisper's log-mel input in NumPy: what the encoder was trained on, bit for bit in recipe.

Recipe (openai/whisper ``audio.py``): 16 kHz audio padded or trimmed to 30 s, a centred STFT
(periodic Hann window of 400, hop 160, reflect padding) whose last frame is dropped, power
spectrum through 80 Slaney-normalised mel filters (librosa's defaults for sr 16000, n_fft 400),
log10 of the power clamped to >= 1e-10, floored at 8 (log10 units) under the window's maximum,
then (x + 4) / 4. The result is (80, 3000) per 30-s window.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480,000
N_FRAMES = WINDOW_SAMPLES // HOP  # 3,000 mel frames
ENCODER_STRIDE = 2  # the encoder's second convolution halves the frame rate
SAMPLES_PER_ENCODER_FRAME = HOP * ENCODER_STRIDE  # 320 samples = 20 ms
N_ENCODER_FRAMES = N_FRAMES // ENCODER_STRIDE  # 1,500


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above (librosa htk=False).
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(80, 201) float32 filter bank, as librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]  # Slaney area normalisation
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    # Periodic Hann (torch.hann_window default), not the symmetric numpy.hanning.
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def pad_or_trim(audio: np.ndarray, length: int = WINDOW_SAMPLES) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, (0, length - len(audio)))


def log_mel(audio: np.ndarray, n_samples: int = WINDOW_SAMPLES) -> np.ndarray:
    """(80, n_samples // 160) float32 log-mel; the default is Whisper's 30-s window (80, 3000),
    shorter audio zero-padded."""
    audio = pad_or_trim(audio, n_samples)
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP  # 3,001; the last is dropped as Whisper does
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames - 1]
    spectrum = np.fft.rfft(frames * _hann(), axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel = mel_filters() @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
