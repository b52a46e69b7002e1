"""Audio -> log filterbank features, in NumPy only.

This module is the one definition of the model's features: host training calls it to build
its datasets and the board calls it to score audio, so what the model sees on the board is
what it saw in training. librosa is used only in the tests, as an oracle.

Framing is "valid" (no centre padding): frame ``i`` covers samples
``[i * hop, i * hop + n_fft)``. That makes streaming exact: a frame depends only on audio that
has already arrived, so the incremental path in ``stream`` reproduces these features bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any, Literal, get_args

import numpy as np

FilterScale = Literal["mel", "linear"]
# The parameters that fix a model window's power frames: two configs that agree on these can
# share one STFT per window (the detector and the speech gate do).
STFT_FIELDS = ("sample_rate", "n_fft", "win_length", "hop_length", "remove_frame_dc",
               "window_seconds")
Normalization = Literal["none", "window_mean", "band_mean"]
NORMALIZATIONS = get_args(Normalization)
# Frames are transformed this many at a time (see Frontend._work_buffers).
FRAME_BLOCK = 64
# The rate the shipped front end (and so every file, stream and training clip) works at.
DEFAULT_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FrontendConfig:
    """Every parameter of the features; the model card records all of them."""

    sample_rate: int = DEFAULT_SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_bands: int = 80
    fmin: float = 20.0
    fmax: float = 8000.0
    scale: FilterScale = "mel"
    log_floor: float = 1e-10
    # "window_mean" subtracts the mean log energy of the whole window, so a gain change
    # (an additive constant in the log domain) cannot move the score: level is a shortcut.
    # "band_mean" subtracts each band's mean over the window instead: a microphone's or room's
    # fixed response (a constant per band in the log domain) cannot move it either.
    normalization: Normalization = "window_mean"
    window_seconds: float = 4.0
    # Subtract each frame's mean before the analysis window: a DC offset carries no evidence
    # about spoofing, but the window leaks it into the lowest bands. Per frame, so the stream
    # and every file path get it from this one place. Off by default only so that cards written
    # before this field existed keep their meaning; the shipped model turns it on.
    remove_frame_dc: bool = False

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin < fmax <= sample_rate / 2")
        if self.scale not in ("mel", "linear"):
            raise ValueError(f"scale must be 'mel' or 'linear', not {self.scale!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}")
        if self.window_samples < self.n_fft:
            raise ValueError("window_seconds is shorter than one FFT frame")

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sample_rate)

    @property
    def frames_per_window(self) -> int:
        return 1 + (self.window_samples - self.n_fft) // self.hop_length

    @property
    def feature_shape(self) -> tuple[int, int]:
        return (self.frames_per_window, self.n_bands)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FrontendConfig:
        check_known_fields(cls, values, "front-end parameters")
        return cls(**values)


def check_known_fields(cls: type, values: dict[str, Any], what: str) -> None:
    """ValueError naming the keys of ``values`` that are not fields of the dataclass ``cls``
    (a card written by a newer kit, or a typo in a config)."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = hz / f_sp
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = f_sp * mel
    log_part = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log_part, linear)


def filterbank(config: FrontendConfig) -> np.ndarray:
    """Triangular filters, shape (n_fft // 2 + 1, n_bands), area-normalised (Slaney).

    With ``scale="mel"`` this equals ``librosa.filters.mel(..., htk=False, norm="slaney")``
    (transposed); with ``scale="linear"`` the band edges are evenly spaced in Hz.
    """
    n_freqs = config.n_fft // 2 + 1
    fft_freqs = np.linspace(0.0, config.sample_rate / 2, n_freqs)
    if config.scale == "mel":
        edges = mel_to_hz(
            np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_bands + 2)
        )
    else:
        edges = np.linspace(config.fmin, config.fmax, config.n_bands + 2)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((config.n_bands, n_freqs))
    for band in range(config.n_bands):
        lower = -ramps[band] / widths[band]
        upper = ramps[band + 2] / widths[band + 1]
        weights[band] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


def analysis_window(config: FrontendConfig) -> np.ndarray:
    """Periodic Hann of win_length, zero-padded to n_fft in the middle (as librosa does)."""
    n = np.arange(config.win_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.win_length)
    window = np.zeros(config.n_fft)
    left = (config.n_fft - config.win_length) // 2
    window[left : left + config.win_length] = hann
    return window.astype(np.float32)


@dataclass
class _WorkBuffers:
    frames: np.ndarray
    spectrum: np.ndarray
    squares: np.ndarray
    power: np.ndarray
    energies: np.ndarray


class Frontend:
    """Computes features for one FrontendConfig; holds the precomputed window and filters.

    Not thread-safe: it reuses scratch buffers between calls (one Frontend per thread).
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        self.config = config or FrontendConfig()
        self._work: _WorkBuffers | None = None

    @cached_property
    def _window(self) -> np.ndarray:
        return analysis_window(self.config).astype(np.float64)

    @cached_property
    def _filters(self) -> np.ndarray:
        return filterbank(self.config)

    def n_frames(self, n_samples: int) -> int:
        if n_samples < self.config.n_fft:
            return 0
        return 1 + (n_samples - self.config.n_fft) // self.config.hop_length

    def log_frames(self, audio: np.ndarray) -> np.ndarray:
        """Log band energies (dB) of every whole frame in ``audio``: (n_frames, n_bands).

        No normalisation here: streaming keeps these in a ring and normalises per window.
        """
        power = self.power_frames(audio)
        if power.shape[0] == 0:
            return np.zeros((0, self.config.n_bands), dtype=np.float32)
        assert self._work is not None
        return self.log_bands(power, out=self._work.energies)

    def power_frames(self, audio: np.ndarray) -> np.ndarray:
        """|STFT|^2 of every whole frame in ``audio``: (n_frames, n_fft // 2 + 1) float32.

        The result is a scratch buffer, valid until the next call on this Frontend: a second
        model with the same STFT (the speech gate) pools it into its own bands without a
        second FFT.
        """
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        count = self.n_frames(audio.shape[0])
        if count == 0:
            return np.zeros((0, self.config.n_fft // 2 + 1), dtype=np.float32)
        frames = np.lib.stride_tricks.as_strided(
            audio,
            shape=(count, self.config.n_fft),
            strides=(audio.strides[0] * self.config.hop_length, audio.strides[0]),
            writeable=False,
        )
        work = self._work_buffers(count)
        for start in range(0, count, FRAME_BLOCK):
            stop = min(start + FRAME_BLOCK, count)
            self._block_power(frames[start:stop], work, work.power[start:stop])
        return work.power

    def _block_power(self, frames: np.ndarray, work: _WorkBuffers, out: np.ndarray) -> None:
        """|STFT|^2 of up to FRAME_BLOCK frames into ``out``."""
        n = frames.shape[0]
        windowed, spectrum, squares = work.frames[:n], work.spectrum[:n], work.squares[:n]
        # float64 on purpose: numpy's float32 FFT path is 2-8x slower here than its float64
        # one, and less precise.
        if self.config.remove_frame_dc:
            np.subtract(frames, frames.mean(axis=1, dtype=np.float64, keepdims=True),
                        out=windowed)
            windowed *= self._window
        else:
            np.multiply(frames, self._window, out=windowed)
        np.fft.rfft(windowed, axis=1, out=spectrum)
        # |X|^2 from the interleaved (re, im) pairs, in buffers reused between calls: fresh
        # temporaries per call cost more than the arithmetic (page faults).
        np.square(spectrum.view(np.float64), out=squares)
        np.add(squares[:, 0::2], squares[:, 1::2], out=out, casting="same_kind")

    def log_bands(self, power: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Log band energies (dB) of power frames from ``power_frames`` of the same STFT."""
        work = self._work
        if out is None and work is not None and work.energies.shape == (
                power.shape[0], self.config.n_bands):
            out = work.energies  # the scratch buffer of this frame count, as log_frames uses
        energies = np.matmul(power, self._filters, out=out)
        np.maximum(energies, self.config.log_floor, out=energies)
        np.log10(energies, out=energies)
        return energies * np.float32(10.0)

    def shares_stft(self, other: FrontendConfig) -> bool:
        """True if ``other`` frames and transforms audio exactly as this front end does."""
        return all(getattr(self.config, name) == getattr(other, name) for name in STFT_FIELDS)

    def _work_buffers(self, count: int) -> _WorkBuffers:
        """Scratch arrays for ``count`` frames, kept while the frame count stays the same
        (always, for fixed windows and fixed streaming chunks). The FFT's float64 scratch holds
        one block of frames only: a whole 4 s window's (397 frames) would take 5 MB of the
        board's memory, 64 frames take 0.8 MB, at the same speed."""
        if self._work is None or self._work.power.shape[0] != count:
            n_freqs = self.config.n_fft // 2 + 1
            block = min(count, FRAME_BLOCK)
            self._work = _WorkBuffers(
                frames=np.empty((block, self.config.n_fft)),
                spectrum=np.empty((block, n_freqs), dtype=np.complex128),
                squares=np.empty((block, 2 * n_freqs)),
                power=np.empty((count, n_freqs), dtype=np.float32),
                energies=np.empty((count, self.config.n_bands), dtype=np.float32),
            )
        return self._work

    def normalize(self, window_frames: np.ndarray) -> np.ndarray:
        """Applies the configured per-window normalisation to (frames, bands) log energies."""
        if self.config.normalization == "window_mean":
            return (window_frames - window_frames.mean(dtype=np.float64)).astype(np.float32)
        if self.config.normalization == "band_mean":
            return (window_frames - window_frames.mean(axis=0, dtype=np.float64)).astype(np.float32)
        return window_frames.astype(np.float32, copy=False)

    def window_features(self, window: np.ndarray) -> np.ndarray:
        """Model input for one window of exactly ``window_samples`` samples."""
        if window.shape != (self.config.window_samples,):
            raise ValueError(
                f"expected {self.config.window_samples} samples, got shape {window.shape}"
            )
        return self.normalize(self.log_frames(window))
