"""Feature batches handed from data workers to the trainer through shared memory.

A streamed batch is 52 MB of float32 (256 windows x 397 frames x 128 bands). Returned from a
worker of Keras's process pool, it is pickled, written through the pool's one result pipe and
read back by one thread of the trainer, which held a 32-core GPU host to a fifth of what its
workers computed. Instead, a worker writes the features straight into a slot of a ring of
batch buffers shared with the trainer and returns only (ring, slot, rows): a few dozen bytes.
The trainer's array is a view of that slot (no copy), and the slot goes back to the workers
when the last reference to that array is dropped, so a slot is never rewritten while anything
(Keras's queue, a tensor aliasing host memory, the caller) still reads it.

The ring is one anonymous shared-memory file (``memfd_create``): it has no name in /dev/shm,
is not bound by that mount's size, and the kernel frees it when the last process that maps it
exits, however it ends (normal exit, crash, Ctrl-C, SIGKILL); Keras's pool workers exit when
the trainer does (their task pipe closes, or, waiting for a slot, they see their parent go),
so none keeps it alive. Where memfd is missing
(not Linux), batches travel pickled as before; so does a batch whose worker finds no free
slot in time.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import time
import uuid
import weakref
from multiprocessing import reduction

import numpy as np

# How long a worker waits for a free slot before sending its batch pickled instead. Slots
# free as the trainer consumes batches (a wait is the trainer being slower than the
# workers), so a wait this long means something holds batches it should have let go.
CLAIM_TIMEOUT_SECONDS = 30.0
_CLAIM_POLL_SECONDS = 0.002
_FREE, _HELD = 0, 1

# The rings this process created or attached, by token: how a received slot finds its memory.
_RINGS: weakref.WeakValueDictionary[str, BatchRing] = weakref.WeakValueDictionary()


def shared_rings_available() -> bool:
    return hasattr(os, "memfd_create")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class BatchRing:
    """``slots`` buffers of ``slot_shape`` float32 values in one shared-memory file, created by
    the trainer before its workers start (forked children inherit it; fork-server children
    receive its file descriptor when the dataset is pickled to them)."""

    def __init__(self, slots: int, slot_shape: tuple[int, ...]) -> None:
        self.slots, self.slot_shape = slots, tuple(slot_shape)
        self.token = uuid.uuid4().hex
        self.owner = os.getpid()
        fd = os.memfd_create(f"edge-detect-batches-{self.token[:8]}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, self._layout())
            self._map = mmap.mmap(fd, self.size)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        weakref.finalize(self, os.close, fd)
        _RINGS[self.token] = self
        self._populate()

    def _populate(self) -> None:
        """Make every slot's pages resident now rather than as batches first fill them: the
        ring is then a fixed cost of every pass, whatever its length (a pass of two batches
        would otherwise peak lower than a long one, by up to the whole ring)."""
        for slot in range(self.slots):
            pages = np.frombuffer(self._map, dtype=np.uint8, count=self.slot_bytes,
                                  offset=self.header_bytes + slot * self.slot_bytes)
            pages[::mmap.PAGESIZE] = 0  # one write per page allocates it

    def _layout(self) -> int:
        self.slot_bytes = _round_up(int(np.prod(self.slot_shape)) * 4, mmap.PAGESIZE)
        self.header_bytes = _round_up(self.slots, mmap.PAGESIZE)
        self.size = self.header_bytes + self.slots * self.slot_bytes
        return self.size

    def __reduce__(self):
        # Only while a process is being started: DupFd hands the descriptor to the child.
        return (_attach, (self.token, self.owner, self.slots, self.slot_shape,
                          reduction.DupFd(self._fd)))

    def in_worker(self) -> bool:
        return os.getpid() != self.owner

    def slot_array(self, slot: int) -> np.ndarray:
        return np.frombuffer(self._map, dtype=np.float32, count=int(np.prod(self.slot_shape)),
                             offset=self.header_bytes + slot * self.slot_bytes
                             ).reshape(self.slot_shape)

    def claim(self, timeout: float | None = None) -> int | None:
        """A free slot, now held by the caller (a worker), or None after ``timeout``
        (default ``CLAIM_TIMEOUT_SECONDS``)."""
        deadline = time.monotonic() + (CLAIM_TIMEOUT_SECONDS if timeout is None else timeout)
        parent = os.getppid()
        while True:
            # A record lock on the file, not a semaphore: nothing named to leak, and the
            # kernel drops it if its worker dies holding it.
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0)
            try:
                slot = self._map.find(bytes([_FREE]), 0, self.slots)
                if slot >= 0:
                    self._map[slot] = _HELD
                    return slot
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)
            if time.monotonic() >= deadline:
                return None
            if os.getppid() != parent:
                # The trainer is gone (or the fork server that dies with it): a worker
                # waiting here never reads Keras's task pipe, so would not see it close.
                os._exit(1)
            time.sleep(_CLAIM_POLL_SECONDS)

    def release(self, slot: int) -> None:
        # One byte store by the slot's only holder; claimers read the state under the file lock.
        self._map[slot] = _FREE

    def trim(self) -> None:
        """Give the memory of every free slot back to the kernel (its pages read as zeros
        and fill again when next written). Under the claim lock, so no worker is writing
        into a slot being trimmed."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0)
        try:
            for slot in range(self.slots):
                if self._map[slot] == _FREE:
                    self._map.madvise(mmap.MADV_REMOVE,
                                      self.header_bytes + slot * self.slot_bytes,
                                      self.slot_bytes)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)

    def resident_bytes(self) -> int:
        """Memory the ring holds now (the pages ever written and not trimmed)."""
        return os.fstat(self._fd).st_blocks * 512

    def held(self) -> int:
        return self.slots - self._map[:self.slots].count(bytes([_FREE]))

    def lease(self, slot: int, rows: int) -> np.ndarray:
        """The trainer's view of the first ``rows`` rows of a slot a worker filled; the slot
        is released when that view and every array derived from it are gone."""
        owner = self.slot_array(slot).view(_Lease)
        weakref.finalize(owner, self.release, slot)
        return np.asarray(owner[:rows])


class _Lease(np.ndarray):
    """The array object whose lifetime is a slot's: every view of it keeps it alive."""


def _attach(token: str, owner: int, slots: int, slot_shape: tuple[int, ...],
            fd: reduction.DupFd) -> BatchRing:
    ring = BatchRing.__new__(BatchRing)
    ring.token, ring.owner, ring.slots, ring.slot_shape = token, owner, slots, slot_shape
    descriptor = fd.detach()
    try:
        ring._map = mmap.mmap(descriptor, ring._layout())
        ring._fd = descriptor
        weakref.finalize(ring, os.close, descriptor)
    except OSError:
        os.close(descriptor)
        raise
    _RINGS.setdefault(token, ring)
    return ring


class SharedBatch:
    """What a worker returns for a batch it wrote into a slot; it pickles to a reference,
    which the trainer unpickles into a view of the slot (``BatchRing.lease``)."""

    def __init__(self, ring: BatchRing, slot: int, rows: int) -> None:
        self.token, self.slot, self.rows = ring.token, slot, rows

    def __reduce__(self):
        return (_receive, (self.token, self.slot, self.rows))


def _receive(token: str, slot: int, rows: int) -> np.ndarray | None:
    # Runs in the trainer's pool result thread, which must never raise: a ring already
    # dropped means nobody waits for this batch any more.
    ring = _RINGS.get(token)
    if ring is None:
        return None
    return ring.lease(slot, rows)
