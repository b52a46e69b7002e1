"""edge_runtime.audio: streaming reads, resampling, DC blocking and windowing match the
one-shot definitions they replace, and every failure is an AudioError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter, resample_poly

from edge_runtime.audio import (
    MAX_RATE,
    DCBlocker,
    StreamingResampler,
    display_path,
    load_audio,
    split_windows,
    stream_audio,
    stream_windows,
)
from edge_runtime.errors import AudioError
from tests.conftest import speech_like


def _chunks(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    out, i, k = [], 0, 0
    while i < x.shape[0]:
        n = sizes[k % len(sizes)]
        out.append(x[i : i + n])
        i += n
        k += 1
    return out


@pytest.mark.parametrize("rate", [4000, 8000, 11025, 22050, 44100, 48000, 96000, 16001])
def test_streaming_resampler_equals_one_shot_resample_poly(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(int(rate * 2.5) + 7).astype(np.float32)
    one_shot = resample_poly(x, 16000, rate).astype(np.float32)
    resampler = StreamingResampler(rate, 16000, min_step_samples=1000)
    parts = [resampler.push(c) for c in _chunks(x, [1, 4999, 333, 20000])]
    streamed = np.concatenate([*parts, resampler.flush()])
    assert streamed.shape == one_shot.shape
    # Same filter, same taps per output sample: equal to float32 rounding (measured: 0.0).
    assert np.max(np.abs(streamed - one_shot)) <= 1e-6


def test_streaming_resampler_passes_16k_through_untouched() -> None:
    x = np.arange(100, dtype=np.float32)
    resampler = StreamingResampler(16000, 16000)
    assert np.array_equal(resampler.push(x), x)
    assert resampler.flush().size == 0


@pytest.mark.parametrize("rate", [4000, 16000, 44100])
def test_dc_blocker_equals_scipy_lfilter(rate: int) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(rate * 2) * 0.1 + 0.3).astype(np.float32)
    r = 1 - 2 * np.pi * 2.0 / rate
    reference, _ = lfilter([1.0, -1.0], [1.0, -r], x.astype(np.float64), zi=[-float(x[0])])
    blocker = DCBlocker(rate)
    streamed = np.concatenate([blocker.process(c) for c in _chunks(x, [777, 1, 5000])])
    assert np.max(np.abs(streamed - reference)) < 1e-5


def test_dc_blocker_turns_a_constant_into_exact_zeros_and_keeps_speech() -> None:
    blocker = DCBlocker(16000)
    assert not np.any(blocker.process(np.full(40000, 0.37, dtype=np.float32)))
    speech = speech_like(3.0)
    cleaned = DCBlocker(16000).process(speech + 0.3)
    # After the 80 ms time constant has passed the offset is gone and the speech is intact.
    settled = slice(16000, None)
    assert abs(float(cleaned[settled].mean())) < 1e-3
    assert np.max(np.abs(cleaned[settled] - speech[settled])) < 0.01


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 150_000),
    sizes=st.lists(st.one_of(st.integers(1, 50), st.integers(1, 40_000)), min_size=1,
                   max_size=5),
    hop=st.sampled_from([1000, 8000, 32000, 64000]),
)
def test_stream_windows_equals_split_windows(length: int, sizes: list[int], hop: int) -> None:
    audio = np.arange(length, dtype=np.float32)
    expected = split_windows(audio, 64000, hop)
    got = list(stream_windows(_chunks(audio, sizes), 64000, hop))
    assert len(got) == expected.shape[0]
    for window, reference in zip(got, expected, strict=True):
        assert np.array_equal(window, reference)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_load_audio_equals_whole_file_read(write_audio, rate: int) -> None:
    signal = speech_like(6.0, rate=rate)
    stereo = np.stack([signal, 0.5 * signal], axis=1)
    path = write_audio("clip.wav", stereo, rate, subtype="FLOAT")
    whole, file_rate = sf.read(path, dtype="float32", always_2d=True)
    mono = whole.mean(axis=1, dtype=np.float32)
    expected = mono if file_rate == 16000 else resample_poly(mono, 160, file_rate // 100)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32
    assert loaded.shape == expected.shape
    assert np.max(np.abs(loaded - expected)) <= 1e-6


def test_stream_audio_is_bounded_per_block(write_audio) -> None:
    path = write_audio("long.wav", speech_like(30.0, rate=48000), 48000)
    sizes = [b.shape[0] for b in stream_audio(path, block_frames=8192)]
    assert sum(sizes) == 160000 * 3
    # A block never holds more than one read block plus the resampler's step and context.
    assert max(sizes) < 16000 * 4


def test_display_path_replaces_undecodable_bytes() -> None:
    name = Path(b"caf\xe9-\xff.wav".decode("utf-8", "surrogateescape"))
    assert display_path(name) == "caf\ufffd-\ufffd.wav"
    assert display_path("plain.wav") == "plain.wav"


def _wav_bytes(samples: np.ndarray, rate: int, declared_data: int | None = None) -> bytes:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    size = len(pcm) if declared_data is None else declared_data
    header = b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", size) + pcm


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    full = _wav_bytes(speech_like(2.0), 16000)
    path = tmp_path / "cut.wav"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(path)


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFFFFF])
def test_streamed_wav_with_placeholder_size_is_read(tmp_path: Path, placeholder: int) -> None:
    # What `arecord ... > file.wav` or ffmpeg writing to a pipe leaves behind.
    path = tmp_path / "streamed.wav"
    path.write_bytes(_wav_bytes(speech_like(2.0), 16000, declared_data=placeholder))
    assert load_audio(path).shape == (32000,)


def test_rates_outside_the_supported_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fast.wav"
    path.write_bytes(_wav_bytes(speech_like(0.2), MAX_RATE + 1000))
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(path)
    slow = tmp_path / "slow.wav"
    slow.write_bytes(_wav_bytes(speech_like(2.0, rate=2000), 2000))
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(slow)


def test_huge_finite_samples_are_refused(write_audio) -> None:
    signal = speech_like(1.0)
    signal[100] = 1e20
    with pytest.raises(AudioError, match=r"out-of-range sample at 0\.006 s"):
        load_audio(write_audio("huge.wav", signal, subtype="FLOAT"))
