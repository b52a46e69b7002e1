"""Audio sources for live detection: a pyaudio microphone, a file played as if live, raw PCM.

Each source is an iterator of float32 mono chunks at the model's rate. Whatever the device or
pipe delivers (any rate, any channel count) is down-mixed, DC-blocked and resampled on the fly,
exactly as ``edge-detect classify`` conditions files (``edge_runtime.audio``). pyaudio is
imported only when a microphone is opened.

Microphone faults are DeviceErrors: no device, a device that cannot be opened, one that
reports an error or stops delivering audio (``stall_timeout``). ``reconnecting`` retries them
with exponential backoff and gives up with a DeviceError (exit 3).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from edge_runtime.audio import DCBlocker, StreamingResampler, stream_audio
from edge_runtime.errors import AudioError, DeviceError

log = logging.getLogger("edge_runtime")

# How long the reader may run ahead of the detector before it waits (and the device, not us,
# starts dropping audio, which pyaudio reports as an input overflow that we count).
QUEUE_SECONDS = 4.0
OVERFLOW_REPORT_SECONDS = 10.0


def pcm16_to_mono(raw: bytes, channels: int) -> np.ndarray:
    """Interleaved little-endian 16-bit PCM -> float32 mono in [-1, 1)."""
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        samples = samples[: samples.shape[0] // channels * channels].reshape(-1, channels)
        return (samples.mean(axis=1, dtype=np.float32) / 32768.0).astype(np.float32)
    return samples.astype(np.float32) / 32768.0


class Conditioner:
    """DC blocking at the source rate, then streaming resampling to the model's rate."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.dc = DCBlocker(source_rate)
        self.resampler = StreamingResampler(source_rate, target_rate)

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        return self.resampler.push(self.dc.process(mono))

    def flush(self) -> np.ndarray:
        return self.resampler.flush()


def file_chunks(path: str | os.PathLike[str], target_rate: int, chunk_seconds: float = 0.1,
                realtime: bool = True,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[np.ndarray]:
    """A file as if it were live: chunks of ``chunk_seconds``, paced at real time unless not."""
    chunk = max(1, int(chunk_seconds * target_rate))
    pending = np.zeros(0, dtype=np.float32)
    started = clock()
    sent = 0

    def pace() -> None:
        if realtime:
            ahead = started + sent / target_rate - clock()
            if ahead > 0:
                sleep(ahead)

    for block in stream_audio(path, target_rate, remove_dc=True):
        pending = np.concatenate([pending, block]) if pending.size else block
        while pending.shape[0] >= chunk:
            piece, pending = pending[:chunk], pending[chunk:]
            sent += piece.shape[0]
            pace()
            yield piece
    if pending.size:
        sent += pending.shape[0]
        pace()
        yield pending


def pcm_chunks(stream: BinaryIO, rate: int, channels: int, target_rate: int,
               chunk_frames: int = 1024) -> Iterator[np.ndarray]:
    """Raw S16_LE PCM from a pipe (``arecord -t raw``), until end of file."""
    frame_bytes = 2 * channels
    conditioner = Conditioner(rate, target_rate)
    leftover = b""
    total = 0
    while True:
        try:
            data = stream.read(chunk_frames * frame_bytes)
        except OSError as error:
            raise AudioError(f"stdin: read failed ({error})") from None
        if not data:
            break
        data = leftover + data
        usable = len(data) // frame_bytes * frame_bytes
        leftover = data[usable:]
        if usable:
            total += usable // frame_bytes
            out = conditioner(pcm16_to_mono(data[:usable], channels))
            if out.size:
                yield out
    tail = conditioner.flush()
    if tail.size:
        yield tail
    if total == 0:
        raise AudioError("stdin: no audio arrived (expected raw 16-bit little-endian PCM)")


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """ALSA and JACK print dozens of lines while PortAudio probes devices; hide them."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise DeviceError(
            "microphone input needs pyaudio: apt-get install portaudio19-dev, then "
            "pip install 'edge-detect[mic]' (or use --input FILE or --input -)"
        ) from None
    return pyaudio


def input_devices() -> list[tuple[int, str, int, int]]:
    """(index, name, max input channels, default rate) of every capture device."""
    pyaudio = _pyaudio()
    with _quiet_native_stderr():
        pa = pyaudio.PyAudio()
    try:
        found = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            if int(info.get("maxInputChannels", 0)) > 0:
                found.append((index, str(info["name"]), int(info["maxInputChannels"]),
                              int(info["defaultSampleRate"])))
        return found
    finally:
        pa.terminate()


class MicSource:
    """One opened pyaudio capture stream, read by a thread into a bounded queue.

    The thread lets the detector notice a device that hangs instead of failing: no audio for
    ``stall_timeout`` seconds is a DeviceError, like an error reported by the device.
    """

    def __init__(self, target_rate: int, device: int | str | None = None,
                 rate: int | None = None, channels: int = 1, chunk: int = 1024,
                 stall_timeout: float = 2.0) -> None:
        self.target_rate = target_rate
        self.device = device
        self.rate = rate
        self.channels = channels
        self.chunk = chunk
        self.stall_timeout = stall_timeout
        self.overflows = 0
        self.dropped_frames = 0
        self.description = ""
        self._pa = None
        self._stream = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._abandoned = threading.Event()
        self._queue: queue.Queue[bytes | BaseException] | None = None

    def _pick(self, pa) -> tuple[int, dict]:
        devices = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            if int(info.get("maxInputChannels", 0)) > 0:
                devices.append((index, info))
        if not devices:
            raise DeviceError("no microphone found (no audio capture device)")
        if self.device is None:
            try:
                info = pa.get_default_input_device_info()
                return int(info["index"]), info
            except OSError:
                return devices[0]
        if isinstance(self.device, int):
            for index, info in devices:
                if index == self.device:
                    return index, info
            raise DeviceError(f"no capture device with index {self.device} "
                              f"(have: {', '.join(str(i) for i, _ in devices)})")
        wanted = self.device.lower()
        for index, info in devices:
            if wanted in str(info["name"]).lower():
                return index, info
        names = ", ".join(f"{i}: {info['name']}" for i, info in devices)
        raise DeviceError(f"no capture device named like {self.device!r} (have {names})")

    def open(self) -> MicSource:
        pyaudio = _pyaudio()
        with _quiet_native_stderr():
            self._pa = pyaudio.PyAudio()
            try:
                index, info = self._pick(self._pa)
                rate = self.rate or int(info["defaultSampleRate"])
                self._stream = self._open_stream(pyaudio, index, rate)
            except OSError as error:
                self._release()
                raise DeviceError(f"cannot open the microphone ({error})") from None
            except DeviceError:
                self._release()
                raise
        self.actual_rate = rate
        self.description = f"{info['name']} (index {index}) at {rate} Hz, {self.channels} ch"
        self._conditioner = Conditioner(rate, self.target_rate)
        self._queue = queue.Queue(maxsize=max(2, int(QUEUE_SECONDS * rate / self.chunk)))
        self._stop = threading.Event()
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._reader, name="mic-reader", daemon=True)
        self._thread.start()
        return self

    def _open_stream(self, pyaudio, index: int, rate: int):
        assert self._pa is not None
        return self._pa.open(format=pyaudio.paInt16, channels=self.channels, rate=rate,
                             input=True, input_device_index=index,
                             frames_per_buffer=self.chunk)

    def _reader(self) -> None:
        pyaudio = _pyaudio()
        # Own references: close() may abandon this thread (stuck in the driver) and open
        # another stream; whatever this thread holds it releases itself when it gets out.
        stream, pa, chunks, stop = self._stream, self._pa, self._queue, self._stop
        assert stream is not None and chunks is not None
        try:
            while not stop.is_set():
                try:
                    data = stream.read(self.chunk, exception_on_overflow=True)
                except OSError as error:
                    if error.args and error.args[-1] == pyaudio.paInputOverflowed:
                        # pyaudio drops the buffer it could not fill in time.
                        self.overflows += 1
                        self.dropped_frames += self.chunk
                        continue
                    chunks.put(DeviceError(f"microphone failed ({error})"))
                    return
                except Exception as error:  # any driver failure: the main thread reports it
                    chunks.put(DeviceError(f"microphone failed ({error})"))
                    return
                while not stop.is_set():
                    try:
                        chunks.put(data, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            if self._abandoned.is_set():
                with contextlib.suppress(Exception):
                    stream.close()
                if pa is not None:
                    with contextlib.suppress(Exception):
                        pa.terminate()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._queue is None:
            self.open()
        assert self._queue is not None
        reported = 0
        next_report = 0.0
        while True:
            try:
                item = self._queue.get(timeout=self.stall_timeout)
            except queue.Empty:
                raise DeviceError(
                    f"microphone stopped delivering audio (nothing for {self.stall_timeout:g} s)"
                ) from None
            if isinstance(item, BaseException):
                raise item
            if self.overflows != reported and time.monotonic() >= next_report:
                # One line per overflow burst, not per lost buffer.
                log.warning("input overflow: %d frames dropped so far (the board is not "
                            "keeping up; try a larger chunk or hop)", self.dropped_frames)
                reported = self.overflows
                next_report = time.monotonic() + OVERFLOW_REPORT_SECONDS
            out = self._conditioner(pcm16_to_mono(item, self.channels))
            if out.size:
                yield out

    def _release(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop_stream()
            with contextlib.suppress(Exception):
                self._stream.close()
            self._stream = None
        if self._pa is not None:
            with contextlib.suppress(Exception):
                self._pa.terminate()
            self._pa = None

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)
            if thread.is_alive():
                # Stuck inside the driver: closing the stream under it could crash the
                # process, so the thread releases it if it ever gets out.
                self._abandoned.set()
                self._stream = None
                self._pa = None
        self._release()
        self._thread = None
        self._queue = None

    def __enter__(self) -> MicSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def reconnecting(open_source: Callable[[], MicSource], retries: int, backoff: float,
                 on_reconnect: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_open: Callable[[MicSource], None] | None = None) -> Iterator[np.ndarray]:
    """Chunks from a microphone, reopened after a fault with backoff (0.5 s, 1 s, 2 s, ... 8 s).

    ``retries`` consecutive failed attempts end it with a DeviceError. ``on_reconnect`` runs
    before audio flows again after a fault, so the detector can drop the broken utterance.
    """
    failures = 0
    faulted = False
    while True:
        source = open_source()
        try:
            source.open()
            if on_open is not None:
                on_open(source)
            if faulted:
                log.warning("microphone back: %s", source.description)
                if on_reconnect is not None:
                    on_reconnect()
            for chunk in source:
                failures = 0
                yield chunk
            return
        except DeviceError as error:
            failures += 1
            faulted = True
            if failures > retries:
                raise DeviceError(f"{error}; gave up after {retries} retries") from None
            delay = min(8.0, backoff * 2 ** (failures - 1))
            log.warning("%s; retry %d/%d in %.1f s", error, failures, retries, delay)
            source.close()
            sleep(delay)
        finally:
            if source.dropped_frames:
                log.warning("input overflow: %d frames dropped in %d overflows",
                            source.dropped_frames, source.overflows)
            source.close()
