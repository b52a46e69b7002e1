"""`edge-detect enrol`, `verify` and `run --owner` end to end with the shipped models: only the
owner's bona fide speech gives 0; spoof 1, another voice 5, no speech 4, bad input 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edge_runtime.cli import main
from edge_runtime.errors import (
    EXIT_BONAFIDE,
    EXIT_INPUT_ERROR,
    EXIT_NO_SPEECH,
    EXIT_NOT_OWNER,
    EXIT_RUNTIME_FAULT,
    EXIT_SPOOF,
)
from edge_runtime.speaker import default_speaker_model_path
from tests.conftest import SAMPLES

OWNER = SAMPLES / "bonafide_ljspeech.flac"
STRANGER = SAMPLES / "bonafide_librispeech_198-209-0000.flac"
SPOOF = SAMPLES / "spoof_espeak_ng.flac"


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An owner "lj" enrolled from three clips of the LJ sample (its first half, its middle
    half, the whole; the detector calls its second half spoof, which the refusal test uses)."""
    audio, rate = sf.read(OWNER, dtype="float32")
    quarter = audio.shape[0] // 4
    clips = []
    for name, part in (("a.wav", audio[:2 * quarter]), ("b.wav", audio[quarter:3 * quarter]),
                       ("c.wav", audio)):
        sf.write(tmp_path / name, part, rate)
        clips.append(tmp_path / name)
    folder = tmp_path / "owners"
    result = cli("enrol", "--store", folder, "lj", *clips)
    assert result.exit_code == 0, result.output
    assert "enrolled lj from 3 clips" in result.output
    return folder


def test_the_shipped_speaker_model_has_its_card() -> None:
    card = json.loads(default_speaker_model_path().with_suffix(".json").read_text())
    assert card["role"] == "speaker_embedding" and 0.0 < card["threshold"] < 1.0
    assert default_speaker_model_path().stat().st_size < 2_500_000


def test_enrolment_stores_an_embedding_and_never_audio(store: Path) -> None:
    files = sorted(p.name for p in store.iterdir())
    assert files == ["lj.json"]
    record = json.loads((store / "lj.json").read_text())
    assert len(record["embedding"]) == 256 and record["clips"] == 3
    assert (store / "lj.json").stat().st_size < 16_000  # numbers, not samples


@pytest.mark.parametrize(("clip", "code", "label"), [
    (OWNER, EXIT_BONAFIDE, "bonafide"),
    (STRANGER, EXIT_NOT_OWNER, "notowner"),
    (SPOOF, EXIT_SPOOF, "spoof"),
])
def test_verify_decisions(store: Path, clip: Path, code: int, label: str) -> None:
    result = cli("verify", "--store", store, "--owner", "lj", "--json", clip)
    assert result.exit_code == code, result.output
    line = json.loads(result.output.splitlines()[-1])
    assert line["label"] == label and line["owner"] == "lj"
    assert set(line) == {"path", "score", "speech", "similarity", "speaker_score", "owner",
                         "label"}


def test_verify_is_0_only_when_every_file_is_the_owner(store: Path, tmp_path: Path) -> None:
    assert cli("verify", "--store", store, "--owner", "lj", OWNER, STRANGER).exit_code == \
        EXIT_NOT_OWNER
    assert cli("verify", "--store", store, "--owner", "lj", OWNER, SPOOF, STRANGER).exit_code \
        == EXIT_SPOOF
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(32000, dtype=np.float32), 16000)
    result = cli("verify", "--store", store, "--owner", "lj", silence)
    assert result.exit_code == EXIT_NO_SPEECH and "nospeech" in result.output
    result = cli("verify", "--store", store, "--owner", "lj", OWNER, tmp_path / "missing.wav")
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "bonafide" in result.output  # the readable file is still judged


def test_enrolment_refuses_a_spoofed_clip_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "owners"
    result = cli("enrol", "--store", folder, "mallory", OWNER, SPOOF)
    assert result.exit_code == EXIT_SPOOF
    assert "enrolment refused" in result.output and SPOOF.name in result.output
    assert not (folder / "mallory.json").exists()


def test_enrolment_errors(store: Path, tmp_path: Path) -> None:
    result = cli("enrol", "--store", store, "lj", OWNER)
    assert result.exit_code == EXIT_INPUT_ERROR and "--replace" in result.output
    result = cli("enrol", "--store", store, "../evil", OWNER)
    assert result.exit_code == EXIT_INPUT_ERROR and "owner name" in result.output
    result = cli("enrol", "--store", store, "--replace", "--threshold", "0.9", "lj", OWNER)
    assert result.exit_code == 0 and "threshold 0.9000" in result.output
    assert json.loads((store / "lj.json").read_text())["threshold"] == 0.9
    result = cli("enrol", "--store", store, "--replace", "--threshold", "nan", "lj", OWNER)
    assert result.exit_code == EXIT_INPUT_ERROR and "--threshold" in result.output


def test_verify_unknown_owner_is_an_input_error(store: Path) -> None:
    result = cli("verify", "--store", store, "--owner", "nobody", OWNER)
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "not enrolled" in result.output and "lj" in result.output


def test_the_speaker_model_is_not_a_spoof_detector() -> None:
    result = cli("classify", "--model", default_speaker_model_path(), OWNER)
    assert result.exit_code == EXIT_RUNTIME_FAULT and "speaker_embedding" in result.output


@pytest.mark.parametrize(("clip", "code"), [(OWNER, EXIT_BONAFIDE),
                                            (STRANGER, EXIT_NOT_OWNER)])
def test_run_with_an_owner(store: Path, clip: Path, code: int) -> None:
    result = cli("run", "--input", clip, "--fast", "--once", "--json", "--decisions-only",
                 "--owner", "lj", "--store", store)
    assert result.exit_code == code, result.output
    event = json.loads(result.output.splitlines()[-1])
    assert "similarity" in event


def test_run_with_an_unknown_owner_fails_before_listening(tmp_path: Path) -> None:
    result = cli("run", "--input", OWNER, "--fast", "--once", "--owner", "nobody", "--store",
                 tmp_path)
    assert result.exit_code == EXIT_INPUT_ERROR and "not enrolled" in result.output
