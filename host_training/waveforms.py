"""Decoded audio on disk: int16 shards read through short-lived memory maps, never whole in RAM.

A clip list is decoded once (worker processes, the board's own reader) into
``<cache>/clips-<key>/``: raw int16 shard files of at most ``SHARD_BYTES`` each and an index of
(shard, offset, length) per clip. Readers map just the samples they need and let the map go,
so neither the trainer nor its data workers grow with the corpus (a long-lived map of a whole
shard would add every page it ever touched to the reader's resident set).
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np

from edge_runtime.atomic import PARTIAL_PREFIX
from edge_runtime.audio import check_samples, display_path, stream_audio
from host_training.datasets import Utterance

SHARD_BYTES = 256 * 1024 * 1024
INDEX_FILE = "index.npy"
# Decoding is ~6 ms a clip: chunks of this many clips keep worker round trips rare.
DECODE_CHUNK = 16


def load_clip(path: Path, sample_rate: int) -> np.ndarray:
    """A clip exactly as the board reads a file (DC blocker, streaming resampler), whole."""
    blocks = list(stream_audio(path, sample_rate, remove_dc=True))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return check_samples(audio, display_path(path), sample_rate)


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def _cache_key(utterances: list[Utterance], sample_rate: int) -> str:
    digest = hashlib.sha256(f"{sample_rate}|dc-blocked".encode())
    for utterance in utterances:
        stat = utterance.path.stat()
        digest.update(f"{utterance.path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


class ClipStore(Sequence[np.ndarray]):
    """The clips of one decoded list, in order; ``store[i]`` is clip i as float32 (16-bit
    precision), read from its shard on demand. Cheap to pickle: paths and the index only."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.index = np.load(self.folder / INDEX_FILE)  # (n, 3) int64: shard, offset, length

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def lengths(self) -> np.ndarray:
        return self.index[:, 2].copy()

    def read(self, index: int, start: int = 0, length: int | None = None) -> np.ndarray:
        """Samples ``[start, start + length)`` of clip ``index`` (default: to its end)."""
        shard, offset, total = (int(v) for v in self.index[index])
        count = total - start if length is None else min(length, total - start)
        if start < 0 or count <= 0:
            raise IndexError(f"clip {index}: samples [{start}, {start + (length or 0)}) "
                             f"outside its {total}")
        mapped = np.memmap(self.folder / f"shard-{shard:05d}.i16", dtype=np.int16, mode="r",
                           offset=2 * (offset + start), shape=(count,))
        clip = mapped.astype(np.float32) / 32768.0
        del mapped  # unmapped here, so touched pages leave this process's resident set
        return clip

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.read(int(index) % len(self))

    def select(self, indices: Sequence[int] | np.ndarray) -> _Selection:
        """The clips at ``indices``, read one by one as they are used."""
        return _Selection(self, np.asarray(indices, dtype=int))


class _Selection(Sequence[np.ndarray]):
    def __init__(self, store: ClipStore, indices: np.ndarray) -> None:
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.store[int(i)] for i in self.indices[index]]
        return self.store[int(self.indices[index])]


def _decode(job: tuple[Path, int]) -> np.ndarray:
    path, sample_rate = job
    return to_int16(load_clip(path, sample_rate))


def write_store(folder: Path, clips, progress=None) -> ClipStore:
    """Writes int16 ``clips`` (any iterable) as shards into ``folder`` (replaced whole when
    done: a killed writer leaves a ``PARTIAL_PREFIX`` folder, never a half store)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f"{PARTIAL_PREFIX}{folder.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    rows: list[tuple[int, int, int]] = []
    shard, offset = 0, 0
    handle = open(partial / "shard-00000.i16", "wb")
    try:
        for clip in clips:
            if offset and 2 * (offset + clip.shape[0]) > SHARD_BYTES:
                handle.close()
                shard, offset = shard + 1, 0
                handle = open(partial / f"shard-{shard:05d}.i16", "wb")
            handle.write(np.ascontiguousarray(clip, dtype=np.int16).tobytes())
            rows.append((shard, offset, clip.shape[0]))
            offset += clip.shape[0]
            if progress is not None:
                progress(len(rows))
        handle.close()
        np.save(partial / INDEX_FILE, np.asarray(rows, dtype=np.int64).reshape(-1, 3))
        _publish(partial, folder)
    except BaseException:
        handle.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ClipStore(folder)


def _publish(partial: Path, folder: Path) -> None:
    """Moves a finished store into place. Runs sharing a cache decode the same clips under the
    same key at once; when another process published first, its store stands and this copy is
    dropped, since removing a published store would pull it from under a run reading it."""
    for _ in range(2):
        try:
            os.replace(partial, folder)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if (folder / INDEX_FILE).exists():
            shutil.rmtree(partial, ignore_errors=True)
            return
        shutil.rmtree(folder, ignore_errors=True)  # no index: a leftover, never a store
    raise OSError(f"{folder}: could not publish the decoded clips")


def load_clip_store(utterances: list[Utterance], sample_rate: int, cache_dir: Path,
                    workers: int | None = None, log=print) -> ClipStore:
    """The decoded clips of ``utterances`` at ``sample_rate``, decoding them into the cache
    first if this exact list (paths, sizes, times) has not been decoded before."""
    folder = Path(cache_dir) / f"clips-{_cache_key(utterances, sample_rate)}"
    if (folder / INDEX_FILE).exists():
        return ClipStore(folder)
    workers = workers or os.cpu_count() or 1
    total = len(utterances)
    started = last = time.perf_counter()

    def progress(done: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= 15 or done == total:
            last = now
            log(f"decoding audio into {folder.name}: {done}/{total} clips, "
                f"{done / max(now - started, 1e-9):.0f} clips/s")

    jobs = [(u.path, sample_rate) for u in utterances]
    if workers == 1:
        return write_store(folder, map(_decode, jobs), progress)
    # The default start method: fork, or the fork server once streaming.py chose it for JAX.
    with multiprocessing.Pool(workers) as pool:
        # imap keeps order and holds at most a few chunks of decoded clips at a time.
        return write_store(folder, pool.imap(_decode, jobs, chunksize=DECODE_CHUNK), progress)


def load_waveforms(utterances: list[Utterance], sample_rate: int,
                   cache_dir: Path | None = None, progress: bool = True) -> list[np.ndarray]:
    """float32 mono audio of every utterance at ``sample_rate``, in order, in RAM (for the
    small evaluation sets; training streams from ``load_clip_store``). 16-bit precision cached
    or not, so a run reads the same samples the first time as later."""
    if cache_dir is not None:
        log = print if progress else (lambda _: None)
        return list(load_clip_store(utterances, sample_rate, cache_dir, log=log))
    return [to_int16(load_clip(u.path, sample_rate)).astype(np.float32) / 32768.0
            for u in utterances]
