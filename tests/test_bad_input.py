"""The bad-input matrix for `edge-detect classify`: every case gives a correct score or one
clear stderr line with exit code 2, never a traceback; good files beside bad ones are still
scored and printed.

"Correct score" is checked against an independent one-shot oracle: the whole file read with
soundfile, DC-blocked with scipy's lfilter, resampled with resample_poly, cut with
split_windows and scored window by window, which is what the streaming path must reproduce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy.signal import lfilter, resample_poly

from edge_runtime.audio import DC_BLOCK_HZ, split_windows
from edge_runtime.cli import main
from edge_runtime.clip import NO_SIGNAL_PEAK
from edge_runtime.errors import EXIT_NO_SPEECH
from edge_runtime.frontend import Frontend
from edge_runtime.model import SpoofModel
from tests.conftest import REPO, speech_like

EDGE_DETECT = [sys.executable, "-m", "edge_runtime"]
# The model's output is int8: one step is 1/256; the printed score is rounded to 1e-4.
SCORE_TOLERANCE = 1 / 256 + 1e-4
# Two output steps: the DC blocker's start-up transient (test below); without the blocker the
# same clip moves by about 19 steps.
DC_SCORE_TOLERANCE = 2 / 256 + 1e-4
# A file at another rate reaches the oracle through scipy (float64 DC filter, resample_poly) and
# the board through its NumPy float32 path; the sub-LSB differences flip a few int8 input
# values, which the four-block detector turns into up to 3 output steps (measured: 8 kHz 1.5,
# 96 kHz 3).
RESAMPLED_TOLERANCE = 4 / 256 + 1e-4

Builder = Callable[[Path], Path]


@pytest.fixture(scope="module")
def model(shipped_model_path: Path) -> SpoofModel:
    return SpoofModel(shipped_model_path)


def oracle_score(path: Path, model: SpoofModel) -> float:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    r = 1 - 2 * np.pi * DC_BLOCK_HZ / rate
    clean, _ = lfilter([1.0, -1.0], [1.0, -r], mono.astype(np.float64), zi=[-float(mono[0])])
    clean = clean.astype(np.float32)
    if rate != 16000:
        g = np.gcd(rate, 16000)
        clean = resample_poly(clean, 16000 // g, rate // g).astype(np.float32)
    frontend = Frontend(model.frontend_config)
    size = model.frontend_config.window_samples
    scores = [model.score_window(frontend.window_features(w))
              for w in split_windows(clean, size, size // 2)
              if np.max(np.abs(w)) > NO_SIGNAL_PEAK]
    return float(np.mean(scores))


# These cases are about reading input, not about speech presence: the synthetic "speech" here
# is a harmonic buzz the speech gate rightly calls no speech, so the gate lets everything
# through (threshold 0). tests/test_speech_presence.py covers the gate.
ANY_SIGNAL_IS_SPEECH = ("--speech-threshold", "0")


def run_classify(*args: str | Path) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(main, ["classify", *ANY_SIGNAL_IS_SPEECH, *map(str, args)])
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, error


def _write(name: str, samples: np.ndarray, rate: int = 16000, **kw) -> Builder:
    def build(tmp: Path) -> Path:
        path = tmp / name
        sf.write(path, samples, rate, **kw)
        return path
    return build


def _bytes(name: str, make: Callable[[Path], bytes]) -> Builder:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(make(tmp))
        return path
    return build


def _truncated(fmt: str, ext: str) -> Builder:
    def make(tmp: Path) -> bytes:
        whole = tmp / f"whole.{ext}"
        sf.write(whole, speech_like(3.0), 16000, format=fmt)
        data = whole.read_bytes()
        return data[: len(data) // 2]
    return _bytes(f"truncated.{ext}", make)


def _flac_named_wav(tmp: Path) -> bytes:
    flac = tmp / "real.flac"
    sf.write(flac, speech_like(3.0), 16000, format="FLAC")
    return flac.read_bytes()


# A tiny but complete PNG (1x1 pixel): a real image, not random bytes.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)

SPEECH = speech_like(5.0)


def _at_rate(rate: int) -> np.ndarray:
    return speech_like(5.0, rate=rate)


def _with_bad_value(value: float) -> np.ndarray:
    signal = SPEECH.copy()
    signal[20000] = value
    return signal


SCORED: dict[str, Builder] = {
    "flac-named-wav": _bytes("actually_flac.wav", _flac_named_wav),
    "8kHz": _write("r8000.wav", _at_rate(8000), 8000),
    "22.05kHz": _write("r22050.wav", _at_rate(22050), 22050),
    "44.1kHz": _write("r44100.wav", _at_rate(44100), 44100),
    "48kHz": _write("r48000.flac", _at_rate(48000), 48000),
    "96kHz": _write("r96000.wav", _at_rate(96000), 96000),
    "8-bit": _write("u8.wav", SPEECH, subtype="PCM_U8"),
    "24-bit": _write("s24.flac", SPEECH, subtype="PCM_24"),
    "32-bit-float": _write("f32.wav", SPEECH, subtype="FLOAT"),
    "stereo": _write("stereo.wav", np.stack([SPEECH, 0.3 * SPEECH], axis=1)),
    "6-channels": _write("six.wav", np.stack([SPEECH * (k + 1) / 6 for k in range(6)], axis=1)),
    "full-scale-clipping": _write("clipped.wav", np.clip(SPEECH * 30, -1, 1)),
    "dc-offset": _write("dc.wav", np.clip(SPEECH + 0.4, -1, 1), subtype="FLOAT"),
    "short-1s": _write("short.wav", SPEECH[:16000]),
    "silence-then-speech": _write(
        "gap.wav", np.concatenate([np.zeros(16000 * 9, np.float32), SPEECH])),
}

REFUSED: dict[str, tuple[Builder, str]] = {
    "empty-file": (_bytes("empty.wav", lambda _: b""), "not a readable audio file"),
    "zero-length-audio": (_write("zero.wav", np.zeros(0, np.float32)),
                          "contains no audio samples"),
    "one-sample": (_write("one.wav", SPEECH[:1]), "only 0 ms of audio"),
    "truncated-wav": (_truncated("WAV", "wav"), "truncated"),
    "truncated-flac": (_truncated("FLAC", "flac"), "truncated or corrupt"),
    "text-named-wav": (_bytes("notes.wav", lambda _: b"just some text\n" * 50),
                       "not a readable audio file"),
    "image-named-wav": (_bytes("picture.wav", lambda _: PNG_1X1), "not a readable audio file"),
    "nan-sample": (_write("nan.wav", _with_bad_value(np.nan), subtype="FLOAT"),
                   "NaN or Inf sample at 1.250 s"),
    "inf-sample": (_write("inf.wav", _with_bad_value(np.inf), subtype="FLOAT"),
                   "NaN or Inf sample at 1.250 s"),
    "directory": (lambda tmp: (tmp / "folder.wav").mkdir() or tmp / "folder.wav",
                  "is a directory"),
    "missing": (lambda tmp: tmp / "nowhere.wav", "no such file"),
}


@pytest.mark.parametrize("case", SCORED)
def test_scored_case_matches_the_one_shot_oracle(case: str, tmp_path: Path,
                                                 model: SpoofModel) -> None:
    path = SCORED[case](tmp_path)
    code, out, err, error = run_classify(path)
    assert error is None and err == ""
    shown, score, label = out.rstrip("\n").split("\t")
    assert shown == str(path)
    tolerance = SCORE_TOLERANCE if sf.info(path).samplerate == 16000 else RESAMPLED_TOLERANCE
    assert abs(float(score) - oracle_score(path, model)) <= tolerance
    assert label == ("spoof" if float(score) >= model.threshold else "bonafide")
    assert code == (1 if label == "spoof" else 0)


# Digital silence and a bare DC level are no speech: a result line, no score, exit 4.
NO_SIGNAL: dict[str, Builder] = {
    "all-silence": _write("silence.wav", np.zeros(16000 * 5, np.float32)),
    "dc-only": _write("dc_only.wav", np.full(16000 * 5, 0.4, np.float32)),
}


@pytest.mark.parametrize("case", NO_SIGNAL)
def test_no_signal_is_no_speech_with_exit_4(case: str, tmp_path: Path) -> None:
    path = NO_SIGNAL[case](tmp_path)
    code, out, err, error = run_classify(path)
    assert error is None and err == ""
    assert out == f"{path}\t-\tnospeech\n"
    assert code == EXIT_NO_SPEECH


@pytest.mark.parametrize("case", REFUSED)
def test_refused_case_gives_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    build, message = REFUSED[case]
    path = build(tmp_path)
    code, out, err, error = run_classify(path)
    assert error is None
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"edge-detect: error: {path}: ")
    assert message in err


def test_dc_offset_scores_like_the_same_speech_without_it(tmp_path: Path) -> None:
    clean = tmp_path / "clean.wav"
    offset = tmp_path / "offset.wav"
    sf.write(clean, SPEECH, 16000, subtype="FLOAT")
    sf.write(offset, SPEECH + 0.4, 16000, subtype="FLOAT")
    _, out, _, _ = run_classify(clean, offset)
    scores = [float(line.split("\t")[1]) for line in out.splitlines()]
    # The blocker's start-up transient still reaches the first window: detector v2.5 (finer
    # int8 ranges) moves this clip by two output steps (0.7500 -> 0.7422), v2.4 by at most one.
    # The blocker itself is checked sample by sample in test_audio.py.
    assert abs(scores[0] - scores[1]) <= DC_SCORE_TOLERANCE


def test_bad_files_do_not_hide_good_ones(tmp_path: Path) -> None:
    good = [SCORED["44.1kHz"](tmp_path), SCORED["stereo"](tmp_path)]
    bad = [REFUSED["empty-file"][0](tmp_path), REFUSED["missing"][0](tmp_path)]
    code, out, err, error = run_classify(good[0], bad[0], good[1], bad[1])
    assert error is None and code == 2
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(p) for p in good]
    assert len(err.splitlines()) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = SCORED["stereo"](tmp_path)
    path.chmod(0)
    code, _, err, error = run_classify(path)
    assert error is None and code == 2 and "permission denied" in err


def test_non_utf8_file_name_is_scored_and_printed(tmp_path: Path) -> None:
    """Through a real process: click gets the name surrogate-escaped from argv."""
    name = os.fsencode(tmp_path) + b"/caf\xe9_\xff.wav"
    sf.write(name, SPEECH, 16000)
    done = subprocess.run([*EDGE_DETECT, "classify", *ANY_SIGNAL_IS_SPEECH, name],
                          capture_output=True,
                          cwd=REPO, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert done.stderr == b""
    shown = done.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    assert shown.startswith(f"{tmp_path}/caf\ufffd_\ufffd.wav\t")
    missing = subprocess.run([*EDGE_DETECT, "classify", name + b"x"], capture_output=True,
                             cwd=REPO, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.decode("utf-8").count("\n") == 1
    assert b"Traceback" not in missing.stderr


def test_whole_matrix_in_one_process(tmp_path: Path) -> None:
    """The real command over every case at once: exit 2, one line per refused file, a line
    per scored file, nothing else on either stream."""
    scored = [build(tmp_path) for build in [*SCORED.values(), *NO_SIGNAL.values()]]
    refused = [build(tmp_path) for build, _ in REFUSED.values()]
    done = subprocess.run([*EDGE_DETECT, "classify", *ANY_SIGNAL_IS_SPEECH,
                           *map(str, scored + refused)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == len(scored)
    assert len(done.stderr.splitlines()) == len(refused)
    assert all(line.startswith("edge-detect: error: ") for line in done.stderr.splitlines())


TWO_HOURS = 2 * 3600
# What reading the whole file would cost: 2 h of float32 at 16 kHz, before any copy.
WHOLE_FILE_BYTES = TWO_HOURS * 16000 * 4
PEAK_RSS_LIMIT_MB = 250

# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child forked from this (large)
# test process would report the parent's size.
_MEASURE = """
import sys
from edge_runtime.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(peak, code, file=sys.stderr)
"""


def _peak_rss_kib(path: Path) -> tuple[int, int, str]:
    done = subprocess.run([sys.executable, "-c", _MEASURE, "classify", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=3600)
    rss, code = done.stderr.split()[-2:]
    return int(rss), int(code), done.stdout


@pytest.mark.slow
def test_two_hour_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    rate = 44100
    path = tmp_path / "two_hours.wav"
    minute = np.clip(speech_like(60.0, rate=rate) * 2, -1, 1)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        for _ in range(TWO_HOURS // 60):
            out.write(minute)
    short = tmp_path / "short.wav"
    sf.write(short, minute[: rate * 10], rate)
    baseline_kib, _, _ = _peak_rss_kib(short)
    peak_kib, code, out = _peak_rss_kib(path)
    print(f"peak RSS: 10 s file {baseline_kib / 1024:.1f} MiB, 2 h file {peak_kib / 1024:.1f} MiB")
    assert code in (0, 1) and out.endswith(("spoof\n", "bonafide\n"))
    assert peak_kib * 1024 < WHOLE_FILE_BYTES / 2
    assert peak_kib / 1024 < PEAK_RSS_LIMIT_MB
    # Growth over a 10 s clip: the window-score list (8 bytes a window) and allocator slack.
    assert (peak_kib - baseline_kib) / 1024 < 40
