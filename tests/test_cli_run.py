"""`edge-detect run` end to end: file, stdin and microphone sources, --once exit codes, hooks,
GPIO, clips, faults (exit 2/3) and clean stops on SIGTERM / Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edge_runtime.cli import main
from edge_runtime.errors import EXIT_NO_SPEECH
from tests.conftest import SAMPLES, asoundrc, default_sigint, speech_like

SPOOF_SAMPLE = SAMPLES / "spoof_espeak_ng.flac"
BONA_SAMPLE = SAMPLES / "bonafide_ljspeech.flac"
CLI = [sys.executable, "-m", "edge_runtime"]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def decisions(text: str) -> list[dict]:
    return [e for e in json_lines(text) if e["decision"] is not None]


def test_the_shipped_example_works() -> None:
    result = CliRunner().invoke(main, ["run", "--input", str(SPOOF_SAMPLE), "--fast", "--once"])
    assert result.exit_code in (0, 1), result.output
    last = result.stdout.strip().splitlines()[-1]
    assert ("SPOOF" in last) == (result.exit_code == 1)


def test_json_lines_and_exit_code_agree_with_the_decision() -> None:
    result = CliRunner().invoke(main, ["run", "--input", str(BONA_SAMPLE), "--fast", "--json"])
    events = json_lines(result.stdout)
    assert events and all({"t", "score", "speech", "decision"} <= set(e) for e in events)
    windows = [e for e in events if e["decision"] is None]
    assert len(windows) >= 3 and all(0.0 <= e["score"] <= 1.0 for e in windows)
    (decision,) = decisions(result.stdout)
    assert result.exit_code == (1 if decision["decision"] == "spoof" else 0)
    assert decision["utterance"][1] == pytest.approx(5.9, abs=0.02)


def test_a_clip_shorter_than_a_window_scores_as_classify_does() -> None:
    runner = CliRunner()
    run = runner.invoke(main, ["run", "--input", str(SPOOF_SAMPLE), "--fast", "--json"])
    classify = runner.invoke(main, ["classify", "--json", str(SPOOF_SAMPLE)])
    (decision,) = decisions(run.stdout)
    assert decision["score"] == pytest.approx(json.loads(classify.stdout)["score"], abs=1e-5)


@pytest.mark.parametrize(("threshold", "code"), [("0", 1), ("1", 0)])
def test_once_exit_codes(threshold: str, code: int) -> None:
    result = CliRunner().invoke(main, ["run", "--input", str(BONA_SAMPLE), "--fast", "--once",
                                       "--threshold", threshold, "--decisions-only"])
    assert result.exit_code == code
    assert len(result.stdout.strip().splitlines()) == 1


def test_real_time_playback_takes_real_time(write_audio) -> None:
    path = write_audio("one.wav", speech_like(1.2))
    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--input", str(path), "--once"])
    assert result.exit_code in (0, 1, EXIT_NO_SPEECH)
    assert time.monotonic() - started >= 1.1


def test_silence_only_with_once_is_no_speech_not_bona_fide(write_audio) -> None:
    path = write_audio("quiet.wav", np.zeros(16000 * 3, dtype=np.float32))
    result = CliRunner().invoke(main, ["run", "--input", str(path), "--fast", "--once"])
    assert result.exit_code == EXIT_NO_SPEECH
    assert "ended before any utterance was heard: no speech" in result.stderr


def test_usage_and_input_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--fast"]).exit_code == 2
    missing = runner.invoke(main, ["run", "--input", str(tmp_path / "no.wav"), "--once"])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[stream]\nhop = -1\n")
    result = runner.invoke(main, ["run", "--config", str(bad), "--input", str(SPOOF_SAMPLE)])
    assert result.exit_code == 2 and "stream.hop: must be >= 0.01" in result.stderr


def test_model_fault_exits_3_even_with_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--input", str(SPOOF_SAMPLE), "--once",
                                       "--model", str(tmp_path / "none.tflite")])
    assert result.exit_code == 3


def test_hooks_get_score_and_decision(tmp_path: Path) -> None:
    spoof_out, bona_out = tmp_path / "spoof.txt", tmp_path / "bona.txt"
    args = ["run", "--input", str(BONA_SAMPLE), "--fast", "--once", "--json",
            "--on-spoof", f'echo "$EDGE_DETECT_DECISION $EDGE_DETECT_SCORE" > {spoof_out}',
            "--on-bonafide", f'echo "$EDGE_DETECT_DECISION $EDGE_DETECT_SCORE" > {bona_out}']
    result = CliRunner().invoke(main, [*args, "--threshold", "0"])
    (decision,) = decisions(result.stdout)
    kind, score = spoof_out.read_text().split()
    assert kind == "spoof" and float(score) == pytest.approx(decision["score"], abs=1e-6)
    assert not bona_out.exists()
    result = CliRunner().invoke(main, [*args, "--threshold", "1"])
    assert result.exit_code == 0 and bona_out.read_text().split()[0] == "bonafide"


def test_hanging_hook_is_cut_off_by_the_profile_timeout(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[actions]\non_spoof = "sleep 30"\nhook_timeout = 0.5\n')
    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--config", str(profile), "--input",
                                       str(SPOOF_SAMPLE), "--fast", "--once", "--threshold", "0"])
    assert result.exit_code == 1
    assert time.monotonic() - started < 10
    assert "killed after 0.5 s" in result.stderr


def test_gpio_and_clips_from_the_profile(tmp_path: Path) -> None:
    pytest.importorskip("gpiozero")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    clips = tmp_path / "clips"
    profile = tmp_path / "lock.toml"
    profile.write_text(f'[actions.gpio]\npin = 17\nhold = 0.2\n\n'
                       f'[actions.clips]\ndir = "{clips}"\nmax_mb = 1.0\n')
    previous = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    try:
        result = CliRunner().invoke(main, ["run", "--config", str(profile), "--input",
                                           str(BONA_SAMPLE), "--fast", "--once", "--json",
                                           "--threshold", "0"])
        assert result.exit_code == 1, result.output
        pin = factory.pin(17)
        # Low, held high on the spoof decision, released after the hold (before exit).
        assert [bool(s.state) for s in pin.states] == [False, True, False]
        assert pin.states[2].timestamp >= 0.19  # gpiozero records the time since the last change
    finally:
        factory.reset()
        Device.pin_factory = previous
    (decision,) = decisions(result.stdout)
    saved = Path(decision["clip"])
    assert saved.parent == clips and saved.exists()
    info = sf.info(saved)
    start, end = decision["utterance"]
    assert info.samplerate == 16000 and info.duration == pytest.approx(end - start, abs=0.02)
    assert [p.name for p in clips.iterdir()] == [saved.name]


def pcm(seconds_of_silence: float = 2.0, rate: int = 48000, channels: int = 2) -> bytes:
    from edge_runtime.audio import resample

    audio, _ = sf.read(BONA_SAMPLE, dtype="float32")
    audio = np.concatenate([audio, np.zeros(int(seconds_of_silence * 16000), np.float32)])
    audio = resample(audio, 16000, rate)
    ints = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    return np.repeat(ints[:, None], channels, axis=1).tobytes()


def run_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **kwargs.pop("env", {})}
    return subprocess.run([*CLI, *args], capture_output=True, env=env, timeout=120, **kwargs)


def test_stdin_pcm_at_any_rate_and_channel_count() -> None:
    result = run_cli(["run", "--input", "-", "--rate", "48000", "--channels", "2", "--json",
                      "--once"], input=pcm())
    assert result.returncode in (0, 1), result.stderr
    (decision,) = decisions(result.stdout.decode())
    assert result.returncode == (1 if decision["decision"] == "spoof" else 0)
    assert decision["utterance"][0] < 0.5


def test_stdin_from_a_terminal_is_refused() -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        result = run_cli(["run", "--input", "-", "--once"], stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 2
    assert b"reads raw PCM from a pipe" in result.stderr


def wait_for(process: subprocess.Popen, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = b""
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        chunk = process.stdout.read()
        if chunk:
            seen += chunk
            if text.encode() in seen:
                return
        time.sleep(0.05)
    raise AssertionError(f"never saw {text!r}; got {seen[-500:]!r}")


@pytest.mark.parametrize(("signum", "code", "message"),
                         [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                          (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_signals_stop_cleanly(tmp_path: Path, signum: int, code: int, message: str) -> None:
    process = subprocess.Popen([*CLI, "run", "--input", "-", "--json", "--once", "--threshold",
                                "1", "--save-clips", str(tmp_path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=default_sigint)
    try:
        # Speech without an end: an utterance is open and windows are being scored.
        process.stdin.write(pcm(0.0, 16000, 1))
        process.stdin.flush()
        wait_for(process, '"score"')
        process.send_signal(signum)
        assert process.wait(timeout=30) == code
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    assert message in stderr and "Traceback" not in stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]


def test_no_microphone_exits_3_after_retries(tmp_path: Path) -> None:
    pytest.importorskip("pyaudio")
    profile = tmp_path / "p.toml"
    profile.write_text('[audio]\ndevice = "edgemic"\nretries = 2\nretry_backoff = 0.05\n')
    result = run_cli(["run", "--config", str(profile), "--once"], env={"HOME": str(tmp_path)})
    assert result.returncode == 3
    lines = result.stderr.decode().strip().splitlines()
    assert [ln for ln in lines if "retry" in ln] and "gave up after 2 retries" in lines[-1]
    assert "ALSA lib" not in result.stderr.decode()  # PortAudio's probing noise is hidden


def test_microphone_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("pyaudio")
    (tmp_path / "mic.raw").write_bytes(pcm(3.0))
    (tmp_path / ".asoundrc").write_text(asoundrc({"edgemic": tmp_path / "mic.raw"}))
    result = run_cli(["run", "--device", "edgemic", "--rate", "48000", "--channels", "2",
                      "--json", "--once"], env={"HOME": str(tmp_path)})
    assert result.returncode in (0, 1), result.stderr
    assert "listening on edgemic" in result.stderr.decode()
    (decision,) = decisions(result.stdout.decode())
    assert result.returncode == (1 if decision["decision"] == "spoof" else 0)
    start, end = decision["utterance"]
    assert start < 0.5 and 5.5 < end < 7.5


def test_gpio_without_gpio_hardware_is_a_device_fault_in_one_line() -> None:
    pytest.importorskip("gpiozero")
    if Path("/proc/device-tree/model").exists():
        pytest.skip("this machine has GPIO")
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    result = subprocess.run([*CLI, "run", "--input", str(SPOOF_SAMPLE), "--fast", "--once",
                             "--gpio-pin", "17"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 3  # fail-safe: never 0 when the lock's relay cannot be driven
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("edge-detect:")]
    assert "cannot drive GPIO pin 17" in result.stderr
