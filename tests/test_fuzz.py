"""Fuzzing the audio loader: whatever bytes a file holds, `load_audio` returns finite 16 kHz
mono float32 audio or raises AudioError, nothing else (no other exception, no crash, no hang).

Three generators: raw random bytes; real WAV/FLAC/OGG files with random bytes overwritten
(these get past format sniffing into header and decoder code); and the same files cut at a
random point. Bounded by max_examples so the module runs in well under a minute.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.audio import load_audio
from edge_runtime.errors import AudioError
from tests.conftest import speech_like

EXTENSIONS = ["wav", "flac", "ogg", "aiff", "mp3", "raw", ""]
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _seed_file(fmt: str, subtype: str | None, rate: int, channels: int) -> bytes:
    signal = speech_like(0.3, rate=rate)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


SEEDS = [
    _seed_file("WAV", "PCM_16", 16000, 1),
    _seed_file("WAV", "FLOAT", 44100, 2),
    _seed_file("WAV", "PCM_U8", 8000, 1),
    _seed_file("FLAC", "PCM_24", 48000, 1),
    _seed_file("OGG", "VORBIS", 22050, 1),
]


def _check_loader(data: bytes, extension: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (f"fuzz.{extension}" if extension else "fuzz")
        path.write_bytes(data)
        try:
            audio = load_audio(path)
        except AudioError as error:
            message = str(error)
            assert message and "\n" not in message
            return
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert audio.shape[0] >= 800  # MIN_SECONDS at 16 kHz
        assert np.all(np.isfinite(audio))


@FUZZ
@given(data=st.binary(max_size=4096), extension=st.sampled_from(EXTENSIONS))
def test_random_bytes(data: bytes, extension: str) -> None:
    _check_loader(data, extension)


@FUZZ
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1,
                   max_size=12),
    extension=st.sampled_from(EXTENSIONS),
)
def test_mutated_real_files(seed: int, edits: list[tuple[int, int]], extension: str) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        # Most edits land in the first 256 bytes, where headers (and the riskiest parsing) are.
        index = position % 256 if position % 2 else position % len(data)
        data[index] = value
    _check_loader(bytes(data), extension)


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), cut=st.floats(0.0, 1.0),
       extension=st.sampled_from(EXTENSIONS))
def test_cut_real_files(seed: int, cut: float, extension: str) -> None:
    data = SEEDS[seed]
    _check_loader(data[: int(len(data) * cut)], extension)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_unmodified_seeds_load(seed: int, tmp_path: Path) -> None:
    """The mutation seeds themselves are good audio, so the fuzzers start from valid files."""
    path = tmp_path / "seed.bin"
    path.write_bytes(SEEDS[seed])
    assert load_audio(path).shape[0] == pytest.approx(0.3 * 16000, abs=2)
