"""Streaming features: each STFT frame is computed once, windows come from a ring of frames.

``StreamingFrontend.push(chunk)`` transforms only the new audio (plus the n_fft - hop samples
of overlap it needs from the previous chunk) and appends the new log-band frames to a ring that
holds one model window. ``window()`` returns the normalised features of the latest window, which
equal ``Frontend.window_features`` on the same samples: cost per second of audio does not depend
on the window length or the hop between scored windows.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.frontend import Frontend, FrontendConfig


class FrameRing:
    """Fixed-capacity ring of (bands,) frames; ``latest()`` returns them oldest first."""

    def __init__(self, capacity: int, bands: int) -> None:
        self._data = np.zeros((capacity, bands), dtype=np.float32)
        self._capacity = capacity
        self._next = 0
        self.count = 0

    def extend(self, frames: np.ndarray) -> None:
        if frames.shape[0] >= self._capacity:
            self._data[:] = frames[-self._capacity :]
            self._next = 0
        else:
            end = self._next + frames.shape[0]
            if end <= self._capacity:
                self._data[self._next : end] = frames
            else:
                split = self._capacity - self._next
                self._data[self._next :] = frames[:split]
                self._data[: end - self._capacity] = frames[split:]
            self._next = end % self._capacity
        self.count = min(self._capacity, self.count + frames.shape[0])

    @property
    def full(self) -> bool:
        return self.count == self._capacity

    def latest(self) -> np.ndarray:
        if not self.full:
            return self._data[: self.count].copy()
        return np.concatenate([self._data[self._next :], self._data[: self._next]])


class StreamingFrontend:
    """Incremental front end over a stream of float32 mono chunks at the config's rate."""

    def __init__(self, config: FrontendConfig | None = None) -> None:
        self.frontend = Frontend(config)
        self.config = self.frontend.config
        self._ring = FrameRing(self.config.frames_per_window, self.config.n_bands)
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet fully framed
        self.samples_seen = 0
        self.frames_seen = 0

    def push(self, chunk: np.ndarray) -> int:
        """Adds audio; returns how many new feature frames it completed."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.samples_seen += chunk.shape[0]
        buffer = np.concatenate([self._pending, chunk]) if self._pending.size else chunk
        frames = self.frontend.log_frames(buffer)
        count = frames.shape[0]
        if count:
            self._ring.extend(frames)
            self.frames_seen += count
            buffer = buffer[count * self.config.hop_length :]
        self._pending = buffer.copy()
        return count

    @property
    def ready(self) -> bool:
        """True once a whole window of frames has arrived."""
        return self._ring.full

    def window(self) -> np.ndarray:
        """Normalised features of the latest full window, (frames, bands)."""
        if not self.ready:
            raise RuntimeError("not enough audio for one window yet")
        return self.frontend.normalize(self._ring.latest())

    def latest_frames(self) -> np.ndarray:
        """Raw log-band frames currently in the ring (fewer than a window at the start)."""
        return self._ring.latest()

    def reset(self) -> None:
        self._ring = FrameRing(self.config.frames_per_window, self.config.n_bands)
        self._pending = np.zeros(0, dtype=np.float32)
