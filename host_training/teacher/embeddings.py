"""Teacher embeddings of a corpus split, cached as one npz per (corpus root, split).

The npz holds ``paths`` (resolved audio paths, the key), ``embeddings`` (N, 768) float32 and
``recipe`` (encoder.RECIPE); a file of another recipe is ignored and rebuilt. The cache is
rewritten atomically every CHECKPOINT_SECONDS, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output
from host_training.datasets import Utterance, load_split
from host_training.teacher.encoder import EMBEDDING_DIM, RECIPE, Encoder, embed_clip
from host_training.teacher.mel import SAMPLE_RATE
from host_training.waveforms import load_clip

DEFAULT_CACHE = Path("cache/teacher")
CHECKPOINT_SECONDS = 60.0


def path_key(path: Path) -> str:
    """The one key of a clip everywhere in the teacher: its absolute resolved path."""
    return str(Path(path).resolve())


def cache_file(cache_dir: Path, root: Path, split: str) -> Path:
    resolved = Path(root).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return Path(cache_dir) / f"{resolved.name}-{split}-{digest}.npz"


def read_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if str(data["recipe"]) != RECIPE:
            return {}
        return dict(zip(data["paths"].tolist(), data["embeddings"], strict=True))


def write_cache(path: Path, table: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(table)
    vectors = (np.stack([table[k] for k in keys]) if keys
               else np.zeros((0, EMBEDDING_DIM), np.float32))
    with atomic_output(path) as temporary:
        np.savez(temporary, paths=np.array(keys), embeddings=vectors, recipe=np.array(RECIPE))


def _print_progress(done: int, total: int, rate: float) -> None:
    print(f"\r  {done}/{total} clips, {rate:.1f} clips/s", end="", file=sys.stderr, flush=True)


def embed_utterances(utterances: list[Utterance], cache_path: Path,
                     encoder_factory: Callable[[], Encoder] = Encoder,
                     progress: Callable[[int, int, float], None] = _print_progress) -> np.ndarray:
    """(len(utterances), 768) embeddings in order, computing only what the cache lacks."""
    table = read_cache(cache_path)
    missing = [u for u in utterances if path_key(u.path) not in table]
    if missing:
        encoder = encoder_factory()
        started = last_write = time.monotonic()
        for done, utterance in enumerate(missing, start=1):
            table[path_key(utterance.path)] = embed_clip(
                encoder, load_clip(utterance.path, SAMPLE_RATE))
            now = time.monotonic()
            if done % 20 == 0 or done == len(missing):
                progress(done, len(missing), done / max(now - started, 1e-9))
            if now - last_write > CHECKPOINT_SECONDS:
                write_cache(cache_path, table)
                last_write = now
        write_cache(cache_path, table)
        print(file=sys.stderr)
    return np.stack([table[path_key(u.path)] for u in utterances])


def embed_split(root: Path, split: str, cache_dir: Path = DEFAULT_CACHE,
                **kwargs) -> tuple[list[Utterance], np.ndarray]:
    utterances = load_split(root, split)
    return utterances, embed_utterances(utterances, cache_file(cache_dir, root, split), **kwargs)
