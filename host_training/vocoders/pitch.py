"""F0 (YIN) and the sine-harmonic plus noise excitation of the NSF family, in NumPy."""

from __future__ import annotations

import math

import numpy as np

# YIN search range and thresholds: covers low male to high child voices.
F0_MIN = 60.0
F0_MAX = 500.0
YIN_THRESHOLD = 0.15
YIN_FRAME = 1024
# Frames quieter than this (RMS relative to the clip's loudest frame) are unvoiced.
VOICING_FLOOR_DB = -40.0
# ... and frames under -80 dBFS are silence whatever the clip's level (digital zero has a
# perfectly "periodic" difference function).
SILENCE_RMS = 1e-4


def _frames(audio: np.ndarray, hop: int, frame: int) -> np.ndarray:
    """Frames centred like the vocoder's mel: frame i covers samples around [i*hop, (i+1)*hop)."""
    count = max(1, math.ceil(len(audio) / hop))
    pad = (frame - hop) // 2
    padded = np.zeros(count * hop + frame - hop, np.float32)
    padded[pad:pad + len(audio)] = audio
    view = np.lib.stride_tricks.sliding_window_view(padded, frame)
    return view[::hop][:count]


def estimate_f0(audio: np.ndarray, sample_rate: int, hop: int,
                fmin: float = F0_MIN, fmax: float = F0_MAX) -> np.ndarray:
    """Frame-wise F0 in Hz (0 = unvoiced), one value per ``hop`` samples (YIN, vectorised).

    The cumulative-mean-normalised difference function is computed from an FFT
    autocorrelation; the first dip under YIN_THRESHOLD in [fmin, fmax], refined by parabolic
    interpolation, is the period. Quiet frames are unvoiced; a 3-frame median removes
    isolated octave slips.
    """
    frames = _frames(np.asarray(audio, np.float32), hop, YIN_FRAME).astype(np.float64)
    width = YIN_FRAME
    max_lag = min(int(sample_rate / fmin) + 2, width // 2)
    min_lag = max(2, int(sample_rate / fmax))
    spectrum = np.fft.rfft(frames, 2 * width, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :max_lag + 1]
    energy = np.cumsum(np.concatenate([np.zeros((len(frames), 1)), frames ** 2], axis=1), axis=1)
    lags = np.arange(max_lag + 1)
    # d(tau) = sum_{j < W - tau} (x_j - x_{j+tau})^2 = head energy + tail energy - 2 r(tau)
    head = energy[:, width - lags]
    tail = energy[:, width:width + 1] - energy[:, lags]
    diff = np.maximum(head + tail - 2.0 * acf, 0.0)
    diff[:, 0] = 0.0
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-12)

    search = cmnd[:, min_lag:max_lag]
    below = search < YIN_THRESHOLD
    # Walk from the first lag under the threshold down to the bottom of that dip.
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    f0 = np.zeros(len(frames))
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    loud = ((20 * np.log10(np.maximum(rms, 1e-9) / max(rms.max(), 1e-9)) > VOICING_FLOOR_DB)
            & (rms > SILENCE_RMS))
    for i in np.nonzero((first >= 0) & loud)[0]:
        lag = first[i]
        row = search[i]
        while lag + 1 < len(row) and row[lag + 1] < row[lag]:
            lag += 1
        shift = 0.0
        if 0 < lag < len(row) - 1:
            a, b, c = row[lag - 1], row[lag], row[lag + 1]
            denominator = a - 2 * b + c
            if denominator > 0:
                shift = 0.5 * (a - c) / denominator
        f0[i] = sample_rate / (lag + min_lag + shift)
    if len(f0) >= 3:
        from scipy.signal import medfilt

        smoothed = medfilt(f0, 3)
        f0 = np.where(f0 > 0, smoothed, 0.0)
        f0[(f0 > 0) & (f0 < fmin * 0.9)] = 0.0
    return f0.astype(np.float32)


def excitation(f0: np.ndarray, hop: int, sample_rate: int, harmonics: int,
               rng: np.random.Generator) -> np.ndarray:
    """NSF source signal, (frames * hop, harmonics + 1): sines at k * F0 in voiced frames
    (amplitude 0.1, random start phase, none above Nyquist) and a noise channel that is loud
    where the frame is unvoiced (0.033) and faint where it is voiced (0.003)."""
    samples = len(f0) * hop
    centres = np.arange(len(f0)) * hop + (hop - 1) / 2
    position = np.arange(samples)
    voiced = np.repeat(f0 > 0, hop)
    # Interpolate only between voiced frames so the pitch does not glide down to 0 Hz.
    if (f0 > 0).any():
        voiced_idx = np.nonzero(f0 > 0)[0]
        track = np.interp(position, centres[voiced_idx], f0[voiced_idx])
    else:
        track = np.zeros(samples)
    track = np.where(voiced, track, 0.0)
    phase = 2 * np.pi * np.cumsum(track / sample_rate) + rng.uniform(0, 2 * np.pi)
    out = np.empty((samples, harmonics + 1), np.float32)
    k = np.arange(1, harmonics + 1)
    out[:, :harmonics] = 0.1 * np.sin(phase[:, None] * k) * (track[:, None] * k
                                                              < sample_rate / 2)
    out[:, :harmonics] *= voiced[:, None]
    out[:, harmonics] = rng.standard_normal(samples) * np.where(voiced, 0.003, 0.033)
    return out
