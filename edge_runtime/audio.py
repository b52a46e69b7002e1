"""Reading audio files into 16 kHz mono float32, and cutting them into model windows.

Files are read in blocks (``stream_audio``) so that an hour-long recording costs the same
memory as a short one; ``load_audio`` is the same stream gathered into one array, for callers
that want the whole clip (training). Every failure is an AudioError with one line a person can
act on. Resampling and DC blocking are NumPy: scipy is never imported on the board.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edge_runtime.errors import AudioError
from edge_runtime.frontend import DEFAULT_SAMPLE_RATE
from edge_runtime.polyphase import HALF_LENGTH_PER_RATE, PolyphaseResampler

# What counts as an audio file when a folder is searched (libsndfile reads each of these).
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif", ".au")
# A clip shorter than this carries too little speech to score (and cannot fill one FFT frame).
MIN_SECONDS = 0.05
# Below 4 kHz there is no speech band left to judge; above 384 kHz no audio interface records,
# and the polyphase filter for an odd ratio would grow without bound.
MIN_RATE = 4000
MAX_RATE = 384000
# Finite samples beyond this are not audio in any scale (float WAVs are nominally within ±1;
# int16 values stored as float stay below 32768) and would overflow the float32 power spectrum.
MAX_ABS_SAMPLE = 1.0e6
# Frames read from the file per block; fewer when the file has many channels.
READ_BLOCK_FRAMES = 1 << 16
# Cut-off of the DC blocker: far below the front end's lowest band (fmin 20 Hz), which it
# attenuates by 0.04 dB, while a constant offset is gone after a few hundred milliseconds.
DC_BLOCK_HZ = 2.0


def audio_files_in(folder: Path) -> list[Path]:
    """Every audio file below ``folder`` (by suffix, any case), sorted."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def rms(audio: np.ndarray) -> float:
    """Root mean square of the samples, accumulated in float64; 0 for no samples."""
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def level_dbfs(audio: np.ndarray) -> float:
    """Mean power in dB relative to full scale; digital silence gives -120 dB, not -inf."""
    return float(10.0 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))


def display_path(path: str | os.PathLike[str] | bytes) -> str:
    """A file name that can always be printed: undecodable bytes become U+FFFD."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", errors="replace")


def _first_line(error: BaseException) -> str:
    # LibsndfileError's str() repeats the file name as a bytes repr; error_string is just why.
    text = str(getattr(error, "error_string", "") or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Writers that stream (arecord or ffmpeg to a pipe) cannot go back to fill in the data size and
# leave one of these; a shorter file with such a header is not truncated, just unfinished.
_PLACEHOLDER_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000})
_DATA_SIZE_NOTE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _declared_truncation(log: str) -> tuple[int, int] | None:
    """(declared, present) data bytes when libsndfile's header log shows a cut-off WAV.

    libsndfile plays a cut-off WAV without complaint (it clamps to what is there) and only
    notes "data : N (should be M)" in its log; a recording that lost its end is refused rather
    than judged on the part that survived.
    """
    match = _DATA_SIZE_NOTE.search(log or "")
    if match is None:
        return None
    declared, present = int(match.group(1)), int(match.group(2))
    if declared in _PLACEHOLDER_SIZES or declared <= present:
        return None
    return declared, present


class AudioSource:
    """An open audio file: rate, channels, and mono float32 blocks at the file's own rate.

    Use as a context manager; raises AudioError for anything that is not readable audio.
    """

    def __init__(self, path: str | os.PathLike[str] | bytes) -> None:
        import soundfile

        self.path = path
        self.name = display_path(path)
        # soundfile encodes str names strictly as UTF-8; bytes reach open(2) untouched, so
        # names that are not valid UTF-8 (surrogate-escaped by Python) still open.
        raw = os.fsencode(path)
        if not os.path.lexists(raw):
            raise AudioError(f"{self.name}: no such file")
        if os.path.isdir(raw):
            raise AudioError(f"{self.name}: is a directory, not an audio file")
        if not os.access(raw, os.R_OK):
            raise AudioError(f"{self.name}: permission denied")
        try:
            self._file = soundfile.SoundFile(raw)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
            # libsndfile's "System error" covers EACCES, ENOENT for dangling links, EIO...
            raise AudioError(
                f"{self.name}: not a readable audio file ({_first_line(error)})"
            ) from None
        except OSError as error:
            raise AudioError(f"{self.name}: cannot open ({error.strerror or error})") from None
        self.rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.frames = int(self._file.frames)
        if not MIN_RATE <= self.rate <= MAX_RATE:
            self.close()
            raise AudioError(
                f"{self.name}: sample rate {self.rate} Hz is outside the supported "
                f"{MIN_RATE}-{MAX_RATE} Hz"
            )
        if self.channels < 1:
            self.close()
            raise AudioError(f"{self.name}: has no audio channels")
        truncation = _declared_truncation(self._file.extra_info)
        if truncation is not None:
            self.close()
            declared, present = truncation
            raise AudioError(
                f"{self.name}: truncated; its header declares {declared} bytes of audio, "
                f"the file holds {present}"
            )

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def blocks(self, block_frames: int = READ_BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the file's rate; NaN, Inf or absurd values raise AudioError."""
        import soundfile

        # Bound the interleaved read buffer, not just the frame count: a 6-channel block
        # is six times a mono one.
        frames = max(256, min(block_frames, (block_frames * 4) // self.channels))
        position = 0
        while True:
            try:
                data = self._file.read(frames, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
                raise AudioError(
                    f"{self.name}: truncated or corrupt; decoding failed after "
                    f"{position / self.rate:.2f} s ({_first_line(error)})"
                ) from None
            except MemoryError:
                raise AudioError(f"{self.name}: block too large to read") from None
            if data.shape[0] == 0:
                return
            mono = to_mono(data)
            bad = ~np.isfinite(mono) | (np.abs(mono) > MAX_ABS_SAMPLE)
            if bad.any():
                at = (position + int(np.argmax(bad))) / self.rate
                what = "NaN or Inf" if not np.isfinite(mono).all() else "out-of-range"
                raise AudioError(f"{self.name}: {what} sample at {at:.3f} s; not valid audio")
            position += data.shape[0]
            yield mono


def to_mono(data: np.ndarray) -> np.ndarray:
    """Down-mixes (samples, channels) to (samples,) by averaging the channels."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0], dtype=np.float32)
    return data.mean(axis=1, dtype=np.float32)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (``edge_runtime.polyphase``: resample_poly's filter, in NumPy)."""
    if source_rate == target_rate:
        return audio
    if source_rate <= 0 or target_rate <= 0:
        raise AudioError(f"invalid sample rate {source_rate} Hz")
    divisor = math.gcd(source_rate, target_rate)
    return PolyphaseResampler(target_rate // divisor, source_rate // divisor)(audio)


class StreamingResampler:
    """Block-wise ``resample`` whose output equals resampling the whole signal at once.

    The polyphase filter is run on overlapping segments that start on multiples of the decimation
    factor, so each segment's output samples sit on the global output grid; only the outputs
    whose filter support lies inside the segment are kept. The context on each side covers
    the filter's reach (10 taps per phase), so the kept samples match the one-shot result up
    to float rounding, and memory is bounded by one segment.
    """

    def __init__(self, source_rate: int, target_rate: int, min_step_samples: int = 32768) -> None:
        if source_rate <= 0 or target_rate <= 0:
            raise AudioError(f"invalid sample rate {source_rate} Hz")
        divisor = math.gcd(source_rate, target_rate)
        self.up = target_rate // divisor
        self.down = source_rate // divisor
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # global input index of _buffer[0], a multiple of down
        self._done = 0  # global input index up to which output was emitted, multiple of down
        if self.passthrough:
            return
        self._resampler = PolyphaseResampler(self.up, self.down)
        half_len = HALF_LENGTH_PER_RATE * max(self.up, self.down)
        reach = -(-half_len // self.up) + 2
        self._context = self.down * -(-reach // self.down)
        self._step = self.down * max(1, -(-min_step_samples // self.down))

    @property
    def passthrough(self) -> bool:
        return self.up == self.down == 1

    def _run(self, segment: np.ndarray) -> np.ndarray:
        return self._resampler(segment)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Adds input samples; returns the output samples they completed (maybe none)."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return block
        self._buffer = np.concatenate([self._buffer, block]) if self._buffer.size else block
        end = self._buffer_start + self._buffer.shape[0]
        ready = (end - self._context) // self.down * self.down
        if ready - self._done < self._step:
            return np.zeros(0, dtype=np.float32)
        segment = self._buffer[: ready + self._context - self._buffer_start]
        out = self._run(segment)
        first = (self._done - self._buffer_start) // self.down * self.up
        count = (ready - self._done) // self.down * self.up
        result = out[first : first + count].astype(np.float32)
        self._done = ready
        keep_from = max(0, ready - self._context)
        self._buffer = self._buffer[keep_from - self._buffer_start :].copy()
        self._buffer_start = keep_from
        return result

    def flush(self) -> np.ndarray:
        """The remaining output once the input has ended (the tail sees zero padding)."""
        if self.passthrough or self._buffer.size == 0:
            return np.zeros(0, dtype=np.float32)
        out = self._run(self._buffer)
        first = (self._done - self._buffer_start) // self.down * self.up
        self._buffer = np.zeros(0, dtype=np.float32)
        return out[first:].astype(np.float32)


class DCBlocker:
    """First-order DC blocker ``y[n] = x[n] - x[n-1] + r * y[n-1]``, stateful across blocks.

    The state starts as if the first sample's level had always been there, so a constant
    signal (digital silence with an offset) comes out as exact zeros, with no start-up
    transient. Computed in NumPy (sub-blocks, cumulative sums).
    """

    _SUB = 256  # r**-256 stays within float64 comfort for any supported rate

    def __init__(self, sample_rate: int, cutoff_hz: float = DC_BLOCK_HZ) -> None:
        self.r = 1.0 - 2.0 * math.pi * cutoff_hz / sample_rate
        j = np.arange(self._SUB, dtype=np.float64)
        self._rise = self.r**j  # r**j
        self._fall = self.r**-j  # r**-j
        self._carry_gain = self.r ** (j + 1)
        self._block_gain = self.r**self._SUB
        self._x_prev: float | None = None
        self._y_prev = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        if self._x_prev is None:
            self._x_prev = float(x[0])
        d = np.diff(x, prepend=self._x_prev)
        self._x_prev = float(x[-1])
        n = x.shape[0]
        pad = -n % self._SUB
        d = np.concatenate([d, np.zeros(pad)]).reshape(-1, self._SUB)
        zero_state = self._rise * np.cumsum(d * self._fall, axis=1)
        y = np.empty_like(zero_state)
        carry = self._y_prev
        # The recursion between sub-blocks is one multiply-add per 256 samples.
        for i in range(zero_state.shape[0]):
            y[i] = zero_state[i] + self._carry_gain * carry
            carry = float(y[i, -1])
        y = y.reshape(-1)[:n]
        self._y_prev = float(y[-1])
        return y.astype(np.float32)


def stream_audio(path: str | os.PathLike[str] | bytes, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 remove_dc: bool = False,
                 block_frames: int = READ_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yields a file as float32 mono blocks at ``sample_rate``, in bounded memory.

    Raises AudioError (possibly after some blocks) for unreadable, empty, too short or
    non-finite audio; callers that must not act on a partial file should gather a result
    before acting on it. With ``remove_dc`` a DC blocker runs at the file's own rate, before
    resampling.
    """
    with AudioSource(path) as source:
        if source.frames == 0:
            raise AudioError(f"{source.name}: contains no audio samples")
        blocker = DCBlocker(source.rate) if remove_dc else None
        resampler = StreamingResampler(source.rate, sample_rate)
        produced = 0
        for block in source.blocks(block_frames):
            if blocker is not None:
                block = blocker.process(block)
            out = resampler.push(block)
            if out.size:
                produced += out.shape[0]
                yield out
        tail = resampler.flush()
        if tail.size:
            produced += tail.shape[0]
            yield tail
        if produced == 0:
            raise AudioError(f"{source.name}: contains no audio samples")
        if produced < MIN_SECONDS * sample_rate:
            raise AudioError(
                f"{source.name}: only {produced / sample_rate * 1000:.0f} ms of audio; "
                f"need at least {MIN_SECONDS * 1000:.0f} ms"
            )


def check_samples(audio: np.ndarray, source: str, sample_rate: int) -> np.ndarray:
    """Refuses audio that cannot be scored honestly: too short, NaN or Inf."""
    if audio.size == 0:
        raise AudioError(f"{source}: contains no audio samples")
    if audio.shape[0] < MIN_SECONDS * sample_rate:
        raise AudioError(
            f"{source}: only {audio.shape[0] / sample_rate * 1000:.0f} ms of audio; "
            f"need at least {MIN_SECONDS * 1000:.0f} ms"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{source}: contains NaN or Inf samples")
    return audio


def load_audio(path: str | os.PathLike[str] | bytes,
               sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Reads WAV/FLAC/OGG/... as float32 mono at ``sample_rate``; raises AudioError."""
    blocks = list(stream_audio(path, sample_rate))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return check_samples(audio, display_path(path), sample_rate)


def fit_to_window(audio: np.ndarray, window_samples: int) -> np.ndarray:
    """Repeat-pads a short clip to one window (as SpecRNet does) or keeps its start."""
    if audio.shape[0] >= window_samples:
        return audio[:window_samples]
    repeats = -(-window_samples // audio.shape[0])
    return np.tile(audio, repeats)[:window_samples]


def split_windows(audio: np.ndarray, window_samples: int, hop_samples: int) -> np.ndarray:
    """Cuts audio into (n, window_samples) windows covering all of it.

    Short clips give one repeat-padded window; the last window is aligned to the end of the
    clip so no audio is left unscored.
    """
    if audio.shape[0] <= window_samples:
        return fit_to_window(audio, window_samples)[None, :]
    starts = list(range(0, audio.shape[0] - window_samples + 1, hop_samples))
    if starts[-1] + window_samples < audio.shape[0]:
        starts.append(audio.shape[0] - window_samples)
    return np.stack([audio[s : s + window_samples] for s in starts])


def stream_windows(blocks: Iterable[np.ndarray], window_samples: int,
                   hop_samples: int) -> Iterator[np.ndarray]:
    """``split_windows`` over a stream of blocks: the same windows, in bounded memory.

    Holds at most one window, one hop and one block of audio: enough for the end-aligned last
    window and, for a clip shorter than one window, the whole clip to repeat-pad. Blocks are
    joined only when a window is due, so tiny blocks cost no more than large ones.
    """
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # global index of buffer[0]
    waiting: list[np.ndarray] = []  # blocks not yet joined onto buffer
    total = 0
    next_start = 0
    last_start: int | None = None
    for block in blocks:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if block.size == 0:
            continue
        waiting.append(block)
        total += block.shape[0]
        if next_start + window_samples > total:
            continue
        buffer = np.concatenate([buffer, *waiting])
        waiting = []
        while next_start + window_samples <= total:
            offset = next_start - buffer_start
            yield buffer[offset : offset + window_samples]
            last_start = next_start
            next_start += hop_samples
        keep_from = max(buffer_start, min(next_start, total - window_samples))
        if keep_from > buffer_start:
            buffer = buffer[keep_from - buffer_start :].copy()
            buffer_start = keep_from
    if total == 0:
        return
    if waiting:
        buffer = np.concatenate([buffer, *waiting])
    if last_start is None:
        yield fit_to_window(buffer, window_samples)
    elif last_start + window_samples < total:
        yield buffer[buffer.shape[0] - window_samples :]
