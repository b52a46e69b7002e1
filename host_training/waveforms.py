"""Loading a dataset's audio once, with an on-disk cache so later runs start in seconds."""

from __future__ import annotations

import hashlib
from pathlib import Path

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


def load_waveforms(utterances: list[Utterance], sample_rate: int,
                   cache_dir: Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """float32 mono audio of every utterance at ``sample_rate``, in order."""
    cache_file = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file = cache_dir / f"waves-{_cache_key(utterances, sample_rate)}.npz"
        if cache_file.exists():
            with np.load(cache_file) as stored:
                samples, offsets = stored["samples"], stored["offsets"]
            return [samples[offsets[i]:offsets[i + 1]].astype(np.float32) / 32768.0
                    for i in range(len(offsets) - 1)]
    iterator = utterances
    if progress:
        from tqdm import tqdm

        iterator = tqdm(utterances, desc="loading audio", unit="file", leave=False)
    waves = [load_clip(u.path, sample_rate) for u in iterator]
    if cache_file is not None:
        offsets = np.cumsum([0] + [len(w) for w in waves])
        samples = np.concatenate([np.clip(np.round(w * 32768.0), -32768, 32767) for w in waves])
        with atomic_output(cache_file) as temporary:
            np.savez(temporary, samples=samples.astype(np.int16), offsets=offsets)
    return waves
