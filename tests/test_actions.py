"""Actions: hooks (env, failure, timeout), GPIO via gpiozero's MockFactory, bounded atomic clip
saving, and the exit codes of run_live."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_runtime.actions import (
    Actions,
    ClipSaver,
    GpioLine,
    HookRunner,
    format_event,
    run_hook,
    run_live,
    write_wav_atomically,
)
from edge_runtime.errors import EXIT_NO_SPEECH
from edge_runtime.frontend import FrontendConfig
from edge_runtime.stream import DetectionEvent, LiveDetector
from tests.conftest import speech_like


def decision(kind: str, score: float = 0.8, t: float = 3.0, clip=None) -> DetectionEvent:
    return DetectionEvent(t=t, score=score, speech=False, decision=kind, utterance=(1.0, t),
                          windows=2, clip=clip)


def test_hook_gets_the_decision_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    runner = HookRunner(f'echo "$EDGE_DETECT_DECISION $EDGE_DETECT_SCORE '
                        f'$EDGE_DETECT_THRESHOLD $EDGE_DETECT_TIME" > {out}', None, 5.0)
    actions = Actions(io.StringIO(), threshold=0.5, hooks=runner)
    actions.handle(decision("spoof", 0.8125, 3.25))
    actions.handle(decision("bonafide", 0.1))  # no bona fide hook: nothing runs
    actions.close()
    assert out.read_text().split() == ["spoof", "0.812500", "0.500000", "3.250"]
    assert [r.returncode for r in runner.results] == [0]


def test_failing_hook_is_logged_and_detection_goes_on(caplog) -> None:
    runner = HookRunner("exit 7", "true", 5.0)
    actions = Actions(io.StringIO(), hooks=runner)
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        actions.handle(decision("spoof"))
        actions.handle(decision("bonafide"))
        actions.close()
    assert [r.returncode for r in runner.results] == [7, 0]
    assert "failed with exit code 7" in caplog.text
    assert actions.decisions == ["spoof", "bonafide"]


def test_hanging_hook_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    started = time.monotonic()
    # The shell's child (sleep) must die too, or it would touch the marker later.
    result = run_hook(f"sleep 5; touch {marker}", {}, timeout=0.5)
    assert result.returncode is None
    assert time.monotonic() - started < 3.0
    time.sleep(0.2)
    assert not marker.exists()


def test_hook_runner_does_not_block_the_caller(caplog) -> None:
    runner = HookRunner("sleep 1", None, 0.3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        runner.submit("spoof", {})
        assert time.monotonic() - started < 0.2
        runner.close()
    assert runner.results[0].returncode is None
    assert "killed after 0.3 s" in caplog.text


@pytest.fixture
def mock_pins():
    pytest.importorskip("gpiozero")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def test_gpio_line_is_held_on_spoof_then_released(mock_pins) -> None:
    line = GpioLine(17, trigger="spoof", hold=0.3)
    pin = mock_pins.pin(17)
    actions = Actions(io.StringIO(), gpio=line)
    actions.handle(decision("bonafide"))
    assert pin.state == 0
    actions.handle(decision("spoof"))
    assert pin.state == 1 and line.active
    time.sleep(0.6)
    assert pin.state == 0
    actions.close()


def test_gpio_active_low_and_bonafide_trigger(mock_pins) -> None:
    line = GpioLine(27, trigger="bonafide", active_high=False, hold=5.0)
    pin = mock_pins.pin(27)
    assert pin.state == 1  # inactive is high for an active-low relay
    line.on_decision("spoof")
    assert pin.state == 1
    line.on_decision("bonafide")
    assert pin.state == 0
    line.close(wait=False)  # cut short (Ctrl-C): released at once
    assert pin.state == 1


def test_gpio_bad_pin_is_a_device_error(mock_pins) -> None:
    from edge_runtime.errors import DeviceError

    with pytest.raises(DeviceError, match="GPIO pin"):
        GpioLine("NOT_A_PIN")


def test_gpio_off_a_board_says_how_to_run_without_one(monkeypatch) -> None:
    pytest.importorskip("gpiozero")
    from gpiozero import Device

    from edge_runtime.errors import DeviceError

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    try:
        line = GpioLine(17)
    except DeviceError as error:
        assert "GPIOZERO_PIN_FACTORY=mock" in str(error)
    else:  # this machine has GPIO pins
        line.close(wait=False)
        pytest.skip("a real pin factory loaded here")


def test_clip_is_written_atomically_and_readable(tmp_path: Path) -> None:
    samples = speech_like(1.0)
    path = tmp_path / "c.wav"
    write_wav_atomically(path, samples, 16000)
    data, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and np.max(np.abs(data - samples)) < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.wav"]


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    import soundfile

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(soundfile, "write", broken)
    with pytest.raises(OSError):
        write_wav_atomically(tmp_path / "c.wav", speech_like(0.5), 16000)
    assert list(tmp_path.iterdir()) == []


def test_clip_folder_stays_under_its_bound_oldest_deleted_first(tmp_path: Path) -> None:
    one_clip = 44 + 2 * 16000  # one second of 16-bit audio
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / ".partial-old.wav").write_bytes(b"half")  # left by a killed run
    saver = ClipSaver(folder, max_bytes=int(2.5 * one_clip), rate=16000)
    assert not (folder / ".partial-old.wav").exists()
    saved = []
    for i in range(5):
        saved.append(saver.save(speech_like(1.0, seed=i), 0.9, float(i)))
        time.sleep(0.01)
    kept = saver.clips()
    assert kept == saved[-2:]  # the newest two fit; the oldest went first
    assert sum(p.stat().st_size for p in kept) <= 2.5 * one_clip
    assert saver.save(speech_like(3.0), 0.9, 9.0) is None  # larger than the bound: not saved
    assert saver.clips() == saved[-2:]


def test_spoof_decisions_save_clips_and_report_them(tmp_path: Path) -> None:
    out = io.StringIO()
    saver = ClipSaver(tmp_path, 10**6, 16000)
    actions = Actions(out, as_json=True, clips=saver)
    actions.handle(decision("spoof", clip=speech_like(0.5)))
    actions.handle(decision("bonafide", clip=speech_like(0.5)))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert Path(lines[0]["clip"]).exists() and "clip" not in lines[1]
    assert len(saver.clips()) == 1


def test_output_lines() -> None:
    window = DetectionEvent(t=4.0, score=0.25, speech=True, smoothed=0.3)
    assert json.loads(json.dumps(window.to_json())) == {
        "t": 4.0, "score": 0.25, "speech": True, "decision": None, "smoothed": 0.3}
    assert format_event(window) == "    4.00s  score 0.2500  smoothed 0.3000"
    assert "SPOOF" in format_event(decision("spoof"))
    assert set(decision("spoof").to_json()) >= {"t", "score", "speech", "decision"}


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def score_window(self, features) -> float:
        return self.value


def chunks_of(audio: np.ndarray, size: int = 1600):
    for start in range(0, audio.shape[0], size):
        yield audio[start : start + size]


def detector(value: float) -> LiveDetector:
    return LiveDetector(Constant(value), FrontendConfig(), threshold=0.5)


QUIET = np.zeros(16000 * 2, dtype=np.float32)


@pytest.mark.parametrize(("value", "code"), [(0.9, 1), (0.1, 0)])
def test_once_exits_with_the_first_decision(value: float, code: int) -> None:
    audio = np.concatenate([speech_like(2.0), QUIET, speech_like(2.0, seed=1), QUIET])
    actions = Actions(io.StringIO())
    assert run_live(chunks_of(audio), detector(value), actions, once=True) == code
    assert len(actions.decisions) == 1  # stopped at the first utterance


def test_without_once_any_spoof_gives_1() -> None:
    audio = np.concatenate([speech_like(2.0), QUIET, speech_like(2.0, seed=1), QUIET])
    actions = Actions(io.StringIO())
    assert run_live(chunks_of(audio), detector(0.1), actions) == 0
    assert actions.decisions == ["bonafide", "bonafide"]


def test_once_on_input_without_speech_is_never_bona_fide() -> None:
    assert run_live(chunks_of(QUIET), detector(0.1), Actions(io.StringIO()),
                    once=True) == EXIT_NO_SPEECH


def test_without_once_input_without_any_utterance_is_no_speech() -> None:
    assert run_live(chunks_of(QUIET), detector(0.1), Actions(io.StringIO())) == EXIT_NO_SPEECH
