"""Every encoder layer's states of a corpus split, cached in chunks: pooled and frame by frame.

One folder per (corpus root, split), named like the final-layer cache (embeddings.cache_file
without its suffix), holding chunk-NNNNN.npz files of CHUNK_CLIPS clips each, in the split's
order. A chunk holds ``paths`` (resolved audio paths), ``pooled`` (n, layers, 768) float32
(mean and std over the clip's frames, as encoder.pooled), ``frames`` (total frames, layers,
384) float16 with ``offsets`` (n + 1) marking each clip's rows, and ``recipe``. A chunk whose
recipe or paths differ is rebuilt; chunks are written whole (atomic), so an interrupted run
resumes at the first missing chunk. About 150 KB per layer per second of audio.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output
from host_training.datasets import Utterance, load_split
from host_training.teacher.embeddings import DEFAULT_CACHE, cache_file, path_key
from host_training.teacher.encoder import (
    MIN_ENCODER_FRAMES,
    TRIM_SECONDS,
    model_dir,
    pooled,
    trimmed,
)
from host_training.teacher.layer_encoder import LayerStack, NumpyLayers
from host_training.teacher.mel import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME, log_mel
from host_training.waveforms import load_clip

N_LAYERS = 5  # the front end (0) and Whisper tiny.en's 4 blocks, each through the final norm
CHUNK_CLIPS = 256
RECIPE = f"whisper-tiny.en|int8-cut-models|unpadded|trim{TRIM_SECONDS}|layers0-4+final-norm"


def layer_dir(cache_dir: Path, root: Path, split: str) -> Path:
    return cache_file(Path(cache_dir) / "layers", root, split).with_suffix("")


def clip_states(encoder: LayerStack | NumpyLayers, audio: np.ndarray) -> np.ndarray:
    """(layers, frames, 384): the clip's first TRIM_SECONDS encoded alone and unpadded."""
    clip = trimmed(audio)
    frames = max(-(-len(clip) // SAMPLES_PER_ENCODER_FRAME), MIN_ENCODER_FRAMES)
    return encoder.all_layers(log_mel(clip, frames * SAMPLES_PER_ENCODER_FRAME))


def _chunk_valid(path: Path, keys: list[str]) -> bool:
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as data:
        return str(data["recipe"]) == RECIPE and data["paths"].tolist() == keys


def _write_chunk(path: Path, keys: list[str], states: list[np.ndarray]) -> None:
    offsets = np.cumsum([0] + [s.shape[1] for s in states])
    with atomic_output(path) as temporary:
        np.savez(temporary, paths=np.array(keys), recipe=np.array(RECIPE), offsets=offsets,
                 pooled=np.stack([[pooled(layer) for layer in s] for s in states]),
                 frames=np.concatenate([s.transpose(1, 0, 2) for s in states]
                                       ).astype(np.float16))


def _print_progress(done: int, total: int, rate: float) -> None:
    print(f"\r  {done}/{total} clips, {rate:.1f} clips/s", end="", file=sys.stderr, flush=True)


def _chunks(utterances: Sequence[Utterance], folder: Path) -> list[tuple[Path, list]]:
    return [(folder / f"chunk-{start // CHUNK_CLIPS:05d}.npz",
             list(utterances[start:start + CHUNK_CLIPS]))
            for start in range(0, len(utterances), CHUNK_CLIPS)]


def embed_layers(utterances: Sequence[Utterance], folder: Path,
                 encoder_factory: Callable[[], LayerStack | NumpyLayers] | None = None,
                 progress: Callable[[int, int, float], None] = _print_progress) -> None:
    """Compute the chunks the cache lacks."""
    chunks = _chunks(utterances, folder)
    missing = [(p, us) for p, us in chunks if not _chunk_valid(p, [path_key(u.path) for u in us])]
    if not missing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    encoder = (encoder_factory or (lambda: LayerStack(model_dir(), folder.parent)))()
    total = sum(len(us) for _, us in missing)
    done, started = 0, time.monotonic()
    for path, members in missing:
        states = []
        for utterance in members:
            states.append(clip_states(encoder, load_clip(utterance.path, SAMPLE_RATE)))
            done += 1
            if done % 20 == 0 or done == total:
                progress(done, total, done / max(time.monotonic() - started, 1e-9))
        _write_chunk(path, [path_key(u.path) for u in members], states)
    print(file=sys.stderr)


def layer_split(root: Path, split: str, cache_dir: Path = DEFAULT_CACHE,
                **kwargs) -> tuple[list[Utterance], Path]:
    """The split's utterances and its (complete) chunk folder, embedding what is missing."""
    utterances = load_split(root, split)
    folder = layer_dir(cache_dir, root, split)
    embed_layers(utterances, folder, **kwargs)
    return utterances, folder


def _chunk_files(folder: Path, n_clips: int) -> list[Path]:
    return [folder / f"chunk-{i:05d}.npz" for i in range(-(-n_clips // CHUNK_CLIPS))]


def load_pooled(folder: Path, n_clips: int, layers: Sequence[int]) -> np.ndarray:
    """(n_clips, len(layers) * 768): the chosen layers' pooled states side by side."""
    parts = []
    for path in _chunk_files(folder, n_clips):
        with np.load(path, allow_pickle=False) as data:
            parts.append(data["pooled"][:, list(layers)].reshape(len(data["paths"]), -1))
    return np.concatenate(parts)


def load_dynamics(folder: Path, n_clips: int, layers: Sequence[int]) -> np.ndarray:
    """(n_clips, len(layers) * 384): per channel, the standard deviation over the clip of the
    frame-to-frame change of the chosen layers' (float16-cached) states; how fast the states
    move, which mean and std do not see. A one-frame clip gets zeros."""
    rows = []
    for clip in load_frames(folder, n_clips, layers):
        values = clip.reshape(len(clip), -1).astype(np.float32)
        rows.append(np.diff(values, axis=0).std(axis=0) if len(values) > 1
                    else np.zeros(values.shape[1], np.float32))
    return np.stack(rows)


def load_frames(folder: Path, n_clips: int, layers: Sequence[int]) -> list[np.ndarray]:
    """Per clip, (frames, len(layers), 384) float16 states of the chosen layers."""
    clips = []
    for path in _chunk_files(folder, n_clips):
        with np.load(path, allow_pickle=False) as data:
            frames, offsets = data["frames"][:, list(layers)], data["offsets"]
        clips += [frames[a:b] for a, b in itertools.pairwise(offsets)]
    return clips
