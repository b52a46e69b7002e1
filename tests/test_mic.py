"""Audio sources: raw PCM on stdin, files played as if live, and a real pyaudio microphone.

With no sound card here, the microphone is an ALSA ``file``-plugin device (defined in an
``.asoundrc`` in a temporary HOME) that captures a known raw PCM file, so PortAudio, pyaudio
and MicSource run for real. Those tests skip where pyaudio is not installed.
"""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.audio import DCBlocker, StreamingResampler, load_audio
from edge_runtime.errors import AudioError, DeviceError
from edge_runtime.mic import file_chunks, pcm16_to_mono, pcm_chunks
from tests.conftest import asoundrc, speech_like

RATE = 16000


def condition(mono: np.ndarray, rate: int) -> np.ndarray:
    """What every source must deliver: DC-blocked at its rate, resampled to 16 kHz."""
    resampler = StreamingResampler(rate, RATE)
    out = resampler.push(DCBlocker(rate).process(mono))
    return np.concatenate([out, resampler.flush()])


def to_pcm(signal: np.ndarray, channels: int) -> tuple[bytes, np.ndarray]:
    """Interleaved int16 bytes with slightly different channels, and their float mono mix."""
    ints = np.stack([np.round(signal * 32767 * (1 - 0.1 * c)) for c in range(channels)], axis=1)
    ints = ints.astype("<i2")
    mono = ints.astype(np.float32).mean(axis=1) / 32768.0
    return ints.tobytes(), mono.astype(np.float32)


def test_pcm16_to_mono_averages_channels() -> None:
    raw = np.array([[1000, 3000], [-32768, 32767]], dtype="<i2").tobytes()
    np.testing.assert_allclose(pcm16_to_mono(raw, 2), [2000 / 32768, -0.5 / 32768])
    assert pcm16_to_mono(np.array([16384], "<i2").tobytes(), 1)[0] == 0.5


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2), (44100, 1), (8000, 3)])
def test_stdin_pcm_is_converted_on_the_fly(rate: int, channels: int) -> None:
    signal = speech_like(2.0, rate=rate, seed=rate)
    raw, mono = to_pcm(signal, channels)
    chunks = list(pcm_chunks(io.BytesIO(raw), rate, channels, RATE, chunk_frames=777))
    got = np.concatenate(chunks)
    expected = condition(mono, rate)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_stdin_partial_frames_across_reads_are_kept() -> None:
    raw, mono = to_pcm(speech_like(0.5, seed=3), 2)

    class Trickle(io.RawIOBase):
        """A pipe that returns odd byte counts, splitting samples and frames."""

        def __init__(self, data: bytes) -> None:
            self.data, self.pos, self.step = data, 0, 0

        def read(self, size: int = -1) -> bytes:
            self.step = self.step % 7 + 1
            piece = self.data[self.pos : self.pos + min(size, 3 * self.step)]
            self.pos += len(piece)
            return piece

    got = np.concatenate(list(pcm_chunks(Trickle(raw), RATE, 2, RATE, chunk_frames=64)))
    np.testing.assert_allclose(got, condition(mono, RATE), atol=1e-6)


def test_empty_stdin_is_an_input_error() -> None:
    with pytest.raises(AudioError, match="no audio arrived"):
        list(pcm_chunks(io.BytesIO(b""), RATE, 1, RATE))


def test_file_source_equals_offline_loading_and_is_paced(write_audio) -> None:
    path = write_audio("s.wav", np.stack([speech_like(1.0, 22050), speech_like(1.0, 22050)], 1),
                       rate=22050)
    fast = np.concatenate(list(file_chunks(path, RATE, realtime=False)))
    offline = load_audio(path, RATE)
    assert fast.shape == offline.shape
    np.testing.assert_allclose(fast, condition(offline_mono(path), 22050), atol=1e-5)

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    paced = list(file_chunks(path, RATE, chunk_seconds=0.1, clock=lambda: now[0], sleep=sleep))
    # Each 0.1 s chunk is handed over 0.1 s after the previous one: real time.
    assert len(paced) == 10 and sum(sleeps) == pytest.approx(1.0, abs=1e-6)


def offline_mono(path: Path) -> np.ndarray:
    import soundfile as sf

    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        list(file_chunks(tmp_path / "nope.wav", RATE, realtime=False))


# --- the real microphone path: PortAudio on an ALSA file-plugin device ---------------------


@pytest.fixture
def alsa_home(tmp_path: Path, monkeypatch):
    """A HOME whose .asoundrc defines capture device 'edgemic' playing known.raw."""
    pytest.importorskip("pyaudio")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ALSA_CONFIG_PATH", raising=False)
    (tmp_path / ".asoundrc").write_text(asoundrc({"edgemic": tmp_path / "known.raw"}))
    return tmp_path


def test_microphone_captures_the_known_audio_converted(alsa_home: Path) -> None:
    from edge_runtime.mic import MicSource, input_devices

    signal = speech_like(3.0, rate=48000, seed=21)
    raw, mono = to_pcm(signal, 2)
    (alsa_home / "known.raw").write_bytes(raw)
    assert any(name == "edgemic" for _, name, _, _ in input_devices())
    source = MicSource(RATE, device="EDGE", rate=48000, channels=2, chunk=1000)
    got: list[np.ndarray] = []
    with source:
        assert "edgemic" in source.description and "48000 Hz, 2 ch" in source.description
        for chunk in source:
            got.append(chunk)
            if sum(c.shape[0] for c in got) >= 2 * RATE:
                break
    captured = np.concatenate(got)[: 2 * RATE]
    expected = condition(mono, 48000)[: 2 * RATE]
    np.testing.assert_allclose(captured, expected, atol=1e-5)
    assert source.dropped_frames == 0


def test_device_by_index_and_unknown_devices(alsa_home: Path) -> None:
    from edge_runtime.mic import MicSource, input_devices

    (alsa_home / "known.raw").write_bytes(bytes(32000))
    index = next(i for i, name, _, _ in input_devices() if name == "edgemic")
    with MicSource(RATE, device=index, rate=RATE) as source:
        assert f"index {index}" in source.description
        assert next(iter(source)).dtype == np.float32
    with pytest.raises(DeviceError, match="no capture device named like 'usb'"):
        MicSource(RATE, device="usb").open()
    with pytest.raises(DeviceError, match="no capture device with index 99"):
        MicSource(RATE, device=99).open()


def test_no_microphone_at_all(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("pyaudio")
    from edge_runtime.mic import MicSource

    monkeypatch.setenv("HOME", str(tmp_path))  # no .asoundrc and no sound card
    if Path("/proc/asound/cards").exists() and "no soundcards" not in Path(
            "/proc/asound/cards").read_text():
        pytest.skip("this machine has a sound card")
    with pytest.raises(DeviceError, match=r"no microphone found|no capture device"):
        MicSource(RATE, device="edgemic").open()


class FailingRead:
    """Wraps a real pyaudio stream: after ``good`` reads it fails the way PortAudio does when
    a USB microphone is unplugged, or hangs the way a wedged driver does."""

    def __init__(self, stream, good: int, mode: str) -> None:
        self.stream, self.good, self.mode = stream, good, mode

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        if self.good <= 0:
            if self.mode == "hang":
                time.sleep(1.2)  # longer than stall_timeout, shorter than close()'s wait
            raise OSError("Unanticipated host error", -9999)
        self.good -= 1
        return self.stream.read(frames, exception_on_overflow=exception_on_overflow)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def breaking_mic(good: int, mode: str, before_open=None):
    """A real MicSource whose pyaudio stream fails after ``good`` reads."""
    from edge_runtime.mic import MicSource

    class BreakingMic(MicSource):
        def open(self):
            if before_open is not None:
                before_open()
            return super().open()

        def _open_stream(self, pyaudio, index, rate):
            return FailingRead(super()._open_stream(pyaudio, index, rate), good, mode)

    return BreakingMic(RATE, device="edgemic", rate=RATE, chunk=800, stall_timeout=0.5)


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_microphone_vanishing_mid_stream_retries_then_gives_up(alsa_home: Path, mode: str,
                                                              caplog) -> None:
    from edge_runtime.mic import reconnecting

    (alsa_home / "known.raw").write_bytes(bytes(64000))
    opened: list[object] = []
    reconnects: list[int] = []
    sleeps: list[float] = []

    def unplug() -> None:
        if opened:
            # The device is gone: ALSA no longer lists it once its definition is removed.
            (alsa_home / ".asoundrc").write_text("")
        opened.append(1)

    got = 0
    with caplog.at_level(logging.WARNING, logger="edge_runtime"), \
            pytest.raises(DeviceError, match="gave up after 2 retries"):
        for chunk in reconnecting(lambda: breaking_mic(10, mode, unplug), retries=2,
                                  backoff=0.01, on_reconnect=lambda: reconnects.append(1),
                                  sleep=sleeps.append):
            got += chunk.shape[0]
    assert got == 10 * 800  # the audio before the fault was delivered
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert len(opened) == 3 and reconnects == []  # never came back
    reason = "microphone failed" if mode == "error" else "stopped delivering audio"
    assert reason in caplog.text and "retry 1/2" in caplog.text
    assert "no microphone found" in caplog.text  # unplugged: nothing left to capture from


def test_microphone_that_comes_back_resumes(alsa_home: Path) -> None:
    from edge_runtime.mic import MicSource, reconnecting

    (alsa_home / "known.raw").write_bytes(bytes(64000))
    count = [0]
    reconnects: list[int] = []

    def open_source() -> MicSource:
        count[0] += 1
        if count[0] == 1:
            return breaking_mic(3, "error")
        return MicSource(RATE, device="edgemic", rate=RATE, chunk=800)

    got = 0
    for chunk in reconnecting(open_source, retries=1, backoff=0.01,
                              on_reconnect=lambda: reconnects.append(1), sleep=lambda s: None):
        got += chunk.shape[0]
        if got >= 20 * 800:
            break
    assert reconnects == [1] and count[0] == 2


def test_input_overflow_is_counted_and_logged(alsa_home: Path, caplog) -> None:
    import pyaudio

    from edge_runtime.mic import MicSource

    (alsa_home / "known.raw").write_bytes(bytes(64000))

    class Overflowing(FailingRead):
        def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
            self.good -= 1
            if self.good in (95, 93):
                raise OSError("Input overflowed", pyaudio.paInputOverflowed)
            return self.stream.read(frames, exception_on_overflow=exception_on_overflow)

    class OverflowingMic(MicSource):
        def _open_stream(self, pyaudio, index, rate):
            return Overflowing(super()._open_stream(pyaudio, index, rate), 100, "error")

    with caplog.at_level(logging.WARNING, logger="edge_runtime"), \
            OverflowingMic(RATE, device="edgemic", rate=RATE, chunk=800) as source:
        chunks = iter(source)
        for _ in range(10):
            next(chunks)
        assert source.overflows == 2 and source.dropped_frames == 1600
    lines = [r.getMessage() for r in caplog.records if "input overflow" in r.getMessage()]
    assert len(lines) == 1  # a burst is reported once, not per lost buffer


def test_pyaudio_missing_is_a_device_error(monkeypatch) -> None:
    import builtins

    from edge_runtime import mic

    real_import = builtins.__import__

    def no_pyaudio(name, *args, **kwargs):
        if name == "pyaudio":
            raise ImportError("No module named 'pyaudio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyaudio)
    with pytest.raises(DeviceError, match="portaudio19-dev"):
        mic.MicSource(RATE).open()


def test_stderr_is_restored_after_probing(alsa_home: Path) -> None:
    from edge_runtime.mic import input_devices

    before = os.fstat(2)
    input_devices()
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
