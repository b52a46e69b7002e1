"""Loading a dataset's audio once, with an on-disk cache so later runs start in seconds."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np

from edge_runtime.atomic import atomic_output
from edge_runtime.audio import check_samples, display_path, stream_audio
from host_training.datasets import Utterance


def load_clip(path: Path, sample_rate: int) -> np.ndarray:
    """A clip exactly as the board reads a file (DC blocker, streaming resampler), whole."""
    blocks = list(stream_audio(path, sample_rate, remove_dc=True))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return check_samples(audio, display_path(path), sample_rate)


def _cache_key(utterances: list[Utterance], sample_rate: int) -> str:
    digest = hashlib.sha256(f"{sample_rate}|dc-blocked".encode())
    for utterance in utterances:
        stat = utterance.path.stat()
        digest.update(f"{utterance.path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


class ClipBank(Sequence[np.ndarray]):
    """Many clips kept as one int16 array (half the memory of float32 clips, a quarter of
    float64); each clip is converted to float32 when it is read."""

    def __init__(self, samples: np.ndarray, offsets: np.ndarray) -> None:
        self.samples = samples
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        clip = self.samples[self.offsets[index]:self.offsets[index + 1]]
        return clip.astype(np.float32) / 32768.0

    def select(self, indices: Sequence[int] | np.ndarray) -> _Selection:
        """The clips at ``indices``, read one by one as they are used."""
        return _Selection(self, np.asarray(indices, dtype=int))


class _Selection(Sequence[np.ndarray]):
    def __init__(self, bank: ClipBank, indices: np.ndarray) -> None:
        self.bank, self.indices = bank, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.bank[int(i)] for i in self.indices[index]]
        return self.bank[int(self.indices[index])]


def load_clip_bank(utterances: list[Utterance], sample_rate: int,
                   cache_dir: Path | None = None, progress: bool = True) -> ClipBank:
    """Mono audio of every utterance at ``sample_rate``, in order, stored as 16-bit."""
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"waves-{_cache_key(utterances, sample_rate)}.npz"
        if cache_file.exists():
            with np.load(cache_file) as stored:
                return ClipBank(stored["samples"], stored["offsets"])
    iterator = utterances
    if progress:
        from tqdm import tqdm

        iterator = tqdm(utterances, desc="loading audio", unit="file", leave=False)
    waves = [load_clip(u.path, sample_rate) for u in iterator]
    offsets = np.cumsum([0] + [len(w) for w in waves])
    samples = np.concatenate([np.clip(np.round(w * 32768.0), -32768, 32767)
                              for w in waves]).astype(np.int16)
    if cache_file is not None:
        with atomic_output(cache_file) as temporary:
            np.savez(temporary, samples=samples, offsets=offsets)
    return ClipBank(samples, offsets)


def load_waveforms(utterances: list[Utterance], sample_rate: int,
                   cache_dir: Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """float32 mono audio of every utterance at ``sample_rate``, in order (16-bit precision,
    cached or not, so a run reads the same samples the first time as later)."""
    return list(load_clip_bank(utterances, sample_rate, cache_dir, progress))
