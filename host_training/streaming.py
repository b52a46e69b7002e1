"""Keras input pipelines that stream from a ClipStore through worker processes.

Every batch is computed where Keras asks for it (``PyDataset.__getitem__``, run by
``workers`` processes with ``use_multiprocessing``): read the clips from their int16 shards,
augment, crop and compute features with the board's front end. Nothing holds an epoch, so
memory stays flat in corpus size. Randomness comes from one generator per
(seed, epoch, clip): a batch is the same whichever worker makes it, in whatever order, and a
resumed run sees the epochs it would have seen.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass

import keras
import numpy as np

from edge_runtime.frontend import Frontend, FrontendConfig
from host_training.augment import AugmentConfig, mixup_batch
from host_training.batch_ring import BatchRing, SharedBatch, shared_rings_available
from host_training.features import training_window
from host_training.waveforms import ClipStore

# Windows per scoring batch: one compiled shape for every batch (the last one is padded).
SCORING_BATCH = 256
# Batches each worker may hold ready ahead of the model.
QUEUE_PER_WORKER = 2
# Batches in shared memory beyond one per worker: the one the model steps on, one its
# backend still holds after the step, one ready for the next step.
TRAINER_HELD_BATCHES = 3


def clip_rng(seed: int, epoch: int, clip: int) -> np.random.Generator:
    """The random stream of one clip in one epoch (augmentation and crop)."""
    return np.random.default_rng((seed, epoch, clip))


def batch_rng(seed: int, epoch: int, clips: np.ndarray) -> np.random.Generator:
    """The random stream of one batch's mixup, named by its first clip. The extra key is 1,
    not 0: NumPy pads shorter seed tuples with zeros, so (seed, epoch, clip, 0) would repeat
    the clip's own stream."""
    return np.random.default_rng((seed, epoch, int(clips[0]), 1))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random stream of an epoch's selection and order."""
    return np.random.default_rng((seed, epoch))


@dataclass(frozen=True)
class Sharding:
    """This process's part of every global batch when several processes (hosts) train."""

    index: int = 0
    count: int = 1


def _prepare_worker_start() -> None:
    """Worker processes are forked from this process on TensorFlow (cheap: they never call
    TensorFlow). On JAX, whose runtime threads make a child forked from this process liable
    to deadlock, they are forked from a fork server instead: started once with this module
    preloaded and no accelerator, so each epoch's workers start in milliseconds rather than
    each importing Keras and JAX again (spawn took about 2 minutes for 30 workers)."""
    if keras.backend.backend() != "jax":
        return
    import jax

    jax.devices()  # this process's backend is fixed before its children's settings change
    if multiprocessing.get_start_method(allow_none=True) != "forkserver":
        # Read only by processes started from now on: the fork server and so the workers.
        os.environ.update({"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
                           "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                           "MKL_NUM_THREADS": "1"})
        multiprocessing.set_start_method("forkserver", force=True)
        multiprocessing.set_forkserver_preload([__name__])


# glibc's mallopt parameter number for the mmap threshold.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 << 20


def return_batch_memory() -> None:
    """Batch-sized buffers (features, pickled batches: megabytes each, allocated by many
    threads) are served by mmap and handed back to the kernel when freed. Left to glibc's
    dynamic threshold they come from per-thread heaps, whose fragmentation made the trainer's
    peak memory grow with the number of batches an epoch had (about 200 MB from 13 to 125)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator decides


def single_threaded_numpy() -> None:
    """Forked workers inherit the parent's BLAS thread pool: N workers x N threads each
    would oversubscribe the cores (and a BLAS pool spinning beside busy workers crawls)."""
    return_batch_memory()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def _loader_options(workers: int) -> dict[str, object]:
    return_batch_memory()
    if workers > 1:
        _prepare_worker_start()
    return {"workers": max(workers, 1), "use_multiprocessing": workers > 1,
            "max_queue_size": QUEUE_PER_WORKER * max(workers, 1)}


def _batch_ring(workers: int, batch_shape: tuple[int, ...]) -> BatchRing | None:
    """Shared batch buffers for worker processes (none for one worker: no transfer): one for
    every task Keras has out (its queue, plus the one it submits while waiting to queue it:
    batches in the making or ready, delivered in order, so a slow batch keeps those after it
    waiting) and ``TRAINER_HELD_BATCHES`` for the trainer's. With one slot per worker and 3
    more, workers waited behind a slow batch: 7,131 clips/s against 11,095 on 1 H200. A
    worker finding no free slot waits for one, so memory stays within the ring."""
    if workers <= 1 or not shared_rings_available():
        return None
    return BatchRing(QUEUE_PER_WORKER * workers + 1 + TRAINER_HELD_BATCHES, batch_shape)


def _trim_ring(ring: BatchRing | None) -> None:
    """Called at the end of every pass (and by Keras before it): the ring's memory goes back
    to the kernel. TensorFlow's ``from_generator`` keeps every dataset it was given alive for
    the life of the process, and with it the ring, so a long run would otherwise keep one
    epoch's worth of batch memory per epoch."""
    if ring is not None and not ring.in_worker():
        ring.trim()


def _features_buffer(ring: BatchRing | None, rows: int,
                     shape: tuple[int, ...]) -> tuple[np.ndarray, SharedBatch | None]:
    """Where a batch's features are written: a ring slot when made in a worker process
    (handed over as a SharedBatch reference), else (in the trainer, or no slot came free) a
    private array that travels pickled."""
    if ring is not None and ring.in_worker():
        slot = ring.claim()
        if slot is not None:
            return ring.slot_array(slot)[:rows], SharedBatch(ring, slot, rows)
    return np.empty((rows, *shape), dtype=np.float32), None


class TrainingWindows(keras.utils.PyDataset):
    """One epoch: batches of (features, target, sample weight) over ``order`` (clip indices of
    ``store``, already shuffled), one augmented random window per clip."""

    def __init__(self, store: ClipStore, order: np.ndarray, targets: np.ndarray,
                 weights: np.ndarray, frontend: FrontendConfig,
                 augment: AugmentConfig | None, seed: int, epoch: int, batch_size: int,
                 noise_clips: np.ndarray | None = None, workers: int = 1,
                 drop_remainder: bool = False, sharding: Sharding = Sharding()) -> None:
        super().__init__(**_loader_options(workers))
        if batch_size % sharding.count:
            raise ValueError(f"batch size {batch_size} does not split over "
                             f"{sharding.count} processes")
        self.batch_size = batch_size // sharding.count
        order = np.asarray(order, dtype=int)
        if sharding.count > 1:  # every process takes the same number of clips
            per_process = len(order) // sharding.count
            order = order[sharding.index::sharding.count][:per_process]
        self.order = order
        self.store, self.targets, self.weights = store, targets, weights
        self.frontend_config, self.augment = frontend, augment
        self.seed, self.epoch = seed, epoch
        self.noise_clips = noise_clips
        self.drop_remainder = drop_remainder
        self._frontend: Frontend | None = None
        self._ring = _batch_ring(workers, (self.batch_size, *frontend.feature_shape, 1))

    @property
    def num_batches(self) -> int:
        full, rest = divmod(len(self.order), self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    @property
    def clips(self) -> int:
        return min(len(self.order), self.num_batches * self.batch_size)

    def batch_clips(self, index: int) -> np.ndarray:
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def on_epoch_end(self) -> None:
        _trim_ring(self._ring)

    def __getitem__(self, index: int):
        if self._frontend is None:
            single_threaded_numpy()
            self._frontend = Frontend(self.frontend_config)
        clips = self.batch_clips(index)
        bank = self.store.select(self.noise_clips) if self.noise_clips is not None else None
        features, shared = _features_buffer(self._ring, len(clips),
                                            (*self.frontend_config.feature_shape, 1))
        for row, clip in enumerate(clips):
            rng = clip_rng(self.seed, self.epoch, int(clip))
            features[row, ..., 0] = training_window(self.store[int(clip)], self._frontend,
                                                    rng, self.augment, bank)
        targets, weights = self.targets[clips], self.weights[clips]
        if self.augment is not None and self.augment.mixup_prob > 0:
            _, targets, weights = mixup_batch(features, targets, weights,
                                              batch_rng(self.seed, self.epoch, clips),
                                              self.augment)
        return (features if shared is None else shared), targets, weights


def window_plan(lengths: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """The scoring windows of every clip as ``split_windows`` cuts them: (owner clip, start),
    start -1 meaning the whole (short) clip repeat-padded to one window."""
    owners, starts = [], []
    for clip, length in enumerate(lengths):
        if length <= window:
            clip_starts = [-1]
        else:
            clip_starts = list(range(0, length - window + 1, hop))
            if clip_starts[-1] + window < length:
                clip_starts.append(length - window)
        owners.extend([clip] * len(clip_starts))
        starts.extend(clip_starts)
    return np.asarray(owners, dtype=int), np.asarray(starts, dtype=int)


class ScoringWindows(keras.utils.PyDataset):
    """Every scoring window of every clip of ``store``, in order, as the board cuts them;
    batches of ``SCORING_BATCH`` windows (the last padded by repeating its final window)."""

    def __init__(self, store: ClipStore, frontend: FrontendConfig, workers: int = 1,
                 hop_fraction: float = 0.5) -> None:
        super().__init__(**_loader_options(workers))
        self.store, self.frontend_config = store, frontend
        window = frontend.window_samples
        self.owners, self.starts = window_plan(store.lengths(), window,
                                               max(1, int(window * hop_fraction)))
        self._frontend: Frontend | None = None
        self._ring = _batch_ring(workers, (SCORING_BATCH, *frontend.feature_shape, 1))

    @property
    def num_batches(self) -> int:
        return -(-len(self.owners) // SCORING_BATCH)

    def on_epoch_end(self) -> None:
        _trim_ring(self._ring)

    def __getitem__(self, index: int):
        from edge_runtime.audio import fit_to_window

        if self._frontend is None:
            single_threaded_numpy()
            self._frontend = Frontend(self.frontend_config)
        window = self.frontend_config.window_samples
        rows = np.arange(index * SCORING_BATCH, (index + 1) * SCORING_BATCH)
        rows = np.minimum(rows, len(self.owners) - 1)
        features, shared = _features_buffer(self._ring, SCORING_BATCH,
                                            (*self.frontend_config.feature_shape, 1))
        for out, row in enumerate(rows):
            clip, start = int(self.owners[row]), int(self.starts[row])
            audio = (fit_to_window(self.store[clip], window) if start < 0
                     else self.store.read(clip, start, window))
            features[out, ..., 0] = self._frontend.window_features(audio)
        return (features if shared is None else shared,)


def stream_clip_scores(model, store: ClipStore, frontend: FrontendConfig,
                       workers: int = 1) -> np.ndarray:
    """Float clip scores (mean over the board's windows) of every clip of ``store``."""
    from host_training.features import clip_scores

    windows = ScoringWindows(store, frontend, workers)
    scores = model.predict(windows, verbose=0)[: len(windows.owners), 0]
    return clip_scores(scores, windows.owners, len(store))
