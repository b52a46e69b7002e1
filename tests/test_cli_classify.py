"""`edge-detect classify` and `info` on the demo clips with the shipped model: output formats,
exit codes, --threshold, and the fail-safe policy (when detection cannot run, the answer is
never "bona fide": exit 2 or 3, never 0). No score is hard-coded: the model is retrained.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from edge_runtime.cli import main
from edge_runtime.clip import ClipScorer
from edge_runtime.errors import EXIT_NO_SPEECH
from edge_runtime.model import SpoofModel, sha256_of
from tests.conftest import REPO, SAMPLES, speech_like

CLIPS = sorted(SAMPLES.glob("*.flac"))


def invoke(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_demo_clips_exit_1_because_spoofs_are_among_them() -> None:
    result = invoke("classify", *CLIPS)
    assert result.exit_code == 1, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [Path(path) for path, _, _ in rows] == CLIPS
    threshold = SpoofModel().threshold
    for _, score, label in rows:
        assert 0.0 <= float(score) <= 1.0
        assert label == ("spoof" if float(score) >= threshold else "bonafide")
    assert any(label == "spoof" for _, _, label in rows)
    assert result.stderr == ""


def test_json_lines_schema() -> None:
    result = invoke("classify", "--json", *CLIPS)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(CLIPS)
    for record, clip in zip(records, CLIPS, strict=True):
        assert set(record) == {"path", "score", "speech", "label"}
        assert record["path"] == str(clip)
        assert isinstance(record["score"], float) and 0.0 <= record["score"] <= 1.0
        assert isinstance(record["speech"], float) and 0.0 <= record["speech"] <= 1.0
        assert record["label"] in ("spoof", "bonafide")


def test_scores_equal_the_library_call() -> None:
    """The command is thin: what it prints is ClipScorer.score_file, rounded."""
    scorer = ClipScorer(SpoofModel())
    result = invoke("classify", "--json", *CLIPS)
    for line, clip in zip(result.stdout.splitlines(), CLIPS, strict=True):
        assert json.loads(line)["score"] == round(scorer.score_file(clip).score, 6)


@pytest.mark.parametrize(("threshold", "code", "label"), [("0", 1, "spoof"),
                                                           ("1", 0, "bonafide")])
def test_threshold_option_moves_every_label(threshold: str, code: int, label: str) -> None:
    # int8 output tops out at 255/256, so no score reaches 1 and every score reaches 0.
    result = invoke("classify", "--threshold", threshold, *CLIPS)
    assert result.exit_code == code
    assert {line.split("\t")[2] for line in result.stdout.splitlines()} == {label}


def test_threshold_between_scores_splits_the_clips() -> None:
    scores = sorted(json.loads(line)["score"]
                    for line in invoke("classify", "--json", *CLIPS).stdout.splitlines())
    if scores[0] == scores[-1]:
        pytest.skip("all demo clips score the same with this model")
    middle = (scores[0] + scores[-1]) / 2
    result = invoke("classify", "--json", "--threshold", str(middle), *CLIPS)
    labels = [json.loads(line)["label"] for line in result.stdout.splitlines()]
    assert "spoof" in labels and "bonafide" in labels


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "nan-ish"])
def test_threshold_out_of_range_is_a_usage_error(bad: str) -> None:
    result = invoke("classify", "--threshold", bad, CLIPS[0])
    assert result.exit_code == 2 and "threshold" in result.stderr


def test_no_files_is_a_usage_error() -> None:
    assert invoke("classify").exit_code == 2


def test_info_shows_the_card_and_interpreter(shipped_model_path: Path) -> None:
    text = invoke("info")
    assert text.exit_code == 0
    assert f"model:       {shipped_model_path}" in text.stdout
    assert "interpreter: ai_edge_litert" in text.stdout
    assert "eval:" in text.stdout  # the headline figures of the card
    assert len(text.stdout.splitlines()) <= 30  # a summary; the whole card is --json
    as_json = json.loads(invoke("info", "--json").stdout)
    assert as_json["card"]["sha256"] == sha256_of(shipped_model_path)
    frames, bands = as_json["card"]["input"]["shape"][1:3]
    fe = as_json["card"]["frontend"]
    # The input shape follows from the card's own front end: 4 s windows, hop 160, n_fft 512.
    assert frames == 1 + (round(fe["window_seconds"] * fe["sample_rate"]) - fe["n_fft"]) // fe[
        "hop_length"]
    assert bands == fe["n_bands"]
    assert as_json["interpreter"].startswith("ai_edge_litert")


# Fail-safe: every way detection can fail to run ends non-zero, and no "bonafide" is printed
# for a file that was not judged.

def test_fail_safe_input_errors_are_never_bona_fide(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, speech_like(3.0) * 0, 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00")
    for path in (garbage, tmp_path / "missing.flac", tmp_path):
        result = invoke("classify", path)
        assert result.exit_code == 2, path
        assert "bonafide" not in result.stdout
    result = invoke("classify", silent)  # silence is judged: no speech
    assert result.exit_code == EXIT_NO_SPEECH and "bonafide" not in result.stdout


def test_fail_safe_input_error_outranks_bona_fide_results(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, speech_like(3.0), 16000)
    result = invoke("classify", "--threshold", "1", "--speech-threshold", "0", good,
                    tmp_path / "missing.wav")
    assert "bonafide" in result.stdout  # the good file was judged and printed
    assert result.exit_code == 2  # but the run as a whole is not a pass


def test_fail_safe_model_errors_exit_3(tmp_path: Path) -> None:
    result = invoke("classify", "--model", tmp_path / "none.tflite", CLIPS[0])
    assert result.exit_code == 3 and result.stdout == ""


def test_fail_safe_unexpected_fault_exits_3_without_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, path):
        raise RuntimeError("simulated fault\nsecond line")

    monkeypatch.setattr(ClipScorer, "score_file", broken)
    monkeypatch.delenv("EDGE_DETECT_DEBUG", raising=False)
    result = invoke("classify", CLIPS[0])
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == ("edge-detect: internal error: RuntimeError: simulated fault "
                             "(EDGE_DETECT_DEBUG=1 shows the traceback)\n")


def test_fail_safe_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(ClipScorer, "score_file", interrupted)
    result = invoke("classify", CLIPS[0])
    assert result.exit_code == 130 and result.stdout == ""


def test_closed_output_pipe_exits_quietly_and_not_0() -> None:
    process = subprocess.Popen([sys.executable, "-m", "edge_runtime", "classify", *CLIPS],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141
    assert stderr == ""
