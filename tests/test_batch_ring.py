"""Shared batch buffers: a worker's batch arrives as the trainer's array without a copy, a slot
is reused only after every view of it is gone, and nothing outlives the processes."""

from __future__ import annotations

import gc
import importlib.util
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from host_training.batch_ring import BatchRing, SharedBatch, shared_rings_available
from tests.conftest import REPO, default_sigint

pytestmark = pytest.mark.skipif(not shared_rings_available(), reason="needs memfd (Linux)")
SHAPE = (4, 3, 2)

_ring: BatchRing | None = None


def _init(ring: BatchRing) -> None:
    global _ring
    _ring = ring


def _fill(value: float) -> SharedBatch:
    """A worker's batch: claim a slot, write it, hand back the reference."""
    assert _ring is not None and _ring.in_worker()
    slot = _ring.claim()
    assert slot is not None
    _ring.slot_array(slot)[:] = value
    return SharedBatch(_ring, slot, rows=3)


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_worker_batches_arrive_as_views_of_shared_slots(start: str) -> None:
    ring = BatchRing(6, SHAPE)
    context = multiprocessing.get_context(start)
    with context.Pool(2, initializer=_init, initargs=(ring,)) as pool:
        batches = pool.map(_fill, [1.0, 2.0, 3.0])
    for value, batch in zip([1.0, 2.0, 3.0], batches, strict=True):
        assert batch.shape == (3, 3, 2) and batch.dtype == np.float32
        np.testing.assert_array_equal(batch, value)
    assert ring.held() == 3
    del batches, batch
    gc.collect()
    assert ring.held() == 0


def test_a_slot_is_held_until_every_derived_array_is_gone() -> None:
    ring = BatchRing(2, SHAPE)
    ring.owner = -1  # act as a worker of some other process
    slot = ring.claim()
    ring.slot_array(slot)[:] = 5.0
    batch = pickle.loads(pickle.dumps(SharedBatch(ring, slot, rows=4)))
    derived = [np.asarray(batch)[..., 0], batch[1:], batch.reshape(-1), memoryview(batch)]
    del batch
    gc.collect()
    for view in list(derived):
        assert ring.held() == 1  # something still reads the slot: no worker may rewrite it
        derived.remove(view)
        del view
        gc.collect()
    assert ring.held() == 0


def test_a_worker_gets_no_slot_while_the_trainer_holds_them_all() -> None:
    ring = BatchRing(2, SHAPE)
    ring.owner = -1
    held = [ring.claim(), ring.claim()]
    started = time.monotonic()
    assert ring.claim(timeout=0.05) is None  # the worker then sends its batch pickled
    assert time.monotonic() - started < 1
    ring.release(held[0])
    assert ring.claim(timeout=0.05) == held[0]


def _ring_maps(pid: int, ring: BatchRing | None = None) -> int:
    name = "edge-detect-batches" + (f"-{ring.token[:8]}" if ring is not None else "")
    try:
        return Path(f"/proc/{pid}/maps").read_text().count(name)
    except (FileNotFoundError, ProcessLookupError):
        return 0


def test_a_dropped_ring_is_unmapped_and_nothing_is_named_in_dev_shm() -> None:
    before = set(os.listdir("/dev/shm"))
    ring = BatchRing(3, SHAPE)
    ring.slot_array(0)[:] = 1.0
    assert _ring_maps(os.getpid(), ring) >= 1
    assert set(os.listdir("/dev/shm")) - before == set()
    mapped = BatchRing.__new__(BatchRing)
    mapped.token = ring.token
    del ring
    gc.collect()
    assert _ring_maps(os.getpid(), mapped) == 0


def test_trimming_frees_the_free_slots_and_keeps_the_held_ones() -> None:
    ring = BatchRing(3, (64, 1024))  # a slot of 256 kB: its pages show in the file's size
    ring.owner = -1
    for slot in range(3):
        ring.slot_array(slot)[:] = 1.0
    held = ring.claim()
    written = ring.resident_bytes()
    ring.trim()
    assert ring.resident_bytes() <= written - 2 * ring.slot_bytes
    assert ring.slot_array(held).min() == 1.0  # a worker may still be writing it
    assert ring.slot_array((held + 1) % 3).max() == 0.0


# A trainer streaming through 2 worker processes, which prints its workers' pids once they
# hold slots and then waits to be interrupted or killed.
_TRAINER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    sys.path.insert(0, {repo!r})
    from edge_runtime.frontend import FrontendConfig
    from host_training.streaming import ScoringWindows
    from host_training.waveforms import write_store
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    rng = np.random.default_rng(0)
    # 20 minutes of audio: far more batches than Keras queues, so the workers stay busy.
    store = write_store({store!r}, (rng.integers(-3000, 3000, 60 * 16000, dtype=np.int16)
                                    for _ in range(20)))
    windows = ScoringWindows(store, FrontendConfig(window_seconds=0.5, n_bands=16), workers=2)
    held = [batch for _, batch in zip(range(2), PyDatasetAdapter(windows).get_numpy_iterator())]
    workers = [p.pid for p in __import__("multiprocessing").active_children()]
    print(" ".join(map(str, workers)), flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("backend", ["tensorflow",
                                     pytest.param("jax", marks=pytest.mark.slow)])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_workers_and_their_shared_memory_go_with_the_trainer(tmp_path: Path, backend: str,
                                                            stop: signal.Signals) -> None:
    if importlib.util.find_spec(backend) is None:  # not imported here: the trainer is a child
        pytest.skip(f"needs {backend}")
    before = set(os.listdir("/dev/shm"))
    script = _TRAINER.format(repo=str(REPO), store=str(tmp_path / "store"))
    env = {**os.environ, "KERAS_BACKEND": backend}
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env,
                               preexec_fn=default_sigint)
    try:
        workers = [int(pid) for pid in trainer.stdout.readline().split()]
        assert workers, "the trainer started no worker processes"
        assert _ring_maps(trainer.pid) >= 1 and all(_ring_maps(pid) for pid in workers)
        trainer.send_signal(stop)
        trainer.wait(timeout=60)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    deadline = time.monotonic() + 10
    while any(_ring_maps(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_ring_maps(pid) for pid in workers), "a worker outlived its trainer"
    new = {name for name in set(os.listdir("/dev/shm")) - before
           if (Path("/dev/shm") / name).exists()}
    assert new == set()
