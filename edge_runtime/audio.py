"""Reading audio files into 16 kHz mono float32, and cutting them into model windows.

Every failure is an AudioError with one line a person can act on. scipy.signal (about 50 MB
and 0.4 s to import) is imported only when a file is not already at the model's rate.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edge_runtime.errors import AudioError

# A clip shorter than this carries too little speech to score (and cannot fill one FFT frame).
MIN_SECONDS = 0.05


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AudioError(f"{path}: not a readable audio file ({detail})") from None
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Down-mixes (samples, channels) to (samples,) by averaging the channels."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly), imported only when needed."""
    if source_rate == target_rate:
        return audio
    if source_rate <= 0:
        raise AudioError(f"invalid sample rate {source_rate} Hz")
    from scipy.signal import resample_poly

    divisor = math.gcd(source_rate, target_rate)
    return resample_poly(audio, target_rate // divisor, source_rate // divisor).astype(np.float32)


def check_samples(audio: np.ndarray, source: str, sample_rate: int) -> np.ndarray:
    """Refuses audio that cannot be scored honestly: too short, NaN or Inf."""
    if audio.size == 0:
        raise AudioError(f"{source}: contains no audio samples")
    if audio.shape[0] < MIN_SECONDS * sample_rate:
        raise AudioError(
            f"{source}: only {audio.shape[0] / sample_rate * 1000:.0f} ms of audio; "
            f"need at least {MIN_SECONDS * 1000:.0f} ms"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{source}: contains NaN or Inf samples")
    return audio


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Reads WAV/FLAC/OGG/... as float32 mono at ``sample_rate``; raises AudioError."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")
    data, rate = _read(path)
    if data.size == 0:
        raise AudioError(f"{path}: contains no audio samples")
    mono = to_mono(data)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: contains NaN or Inf samples")
    return check_samples(resample(mono, rate, sample_rate), str(path), sample_rate)


def fit_to_window(audio: np.ndarray, window_samples: int) -> np.ndarray:
    """Repeat-pads a short clip to one window (as SpecRNet does) or keeps its start."""
    if audio.shape[0] >= window_samples:
        return audio[:window_samples]
    repeats = -(-window_samples // audio.shape[0])
    return np.tile(audio, repeats)[:window_samples]


def split_windows(audio: np.ndarray, window_samples: int, hop_samples: int) -> np.ndarray:
    """Cuts audio into (n, window_samples) windows covering all of it.

    Short clips give one repeat-padded window; the last window is aligned to the end of the
    clip so no audio is left unscored.
    """
    if audio.shape[0] <= window_samples:
        return fit_to_window(audio, window_samples)[None, :]
    starts = list(range(0, audio.shape[0] - window_samples + 1, hop_samples))
    if starts[-1] + window_samples < audio.shape[0]:
        starts.append(audio.shape[0] - window_samples)
    return np.stack([audio[s : s + window_samples] for s in starts])
