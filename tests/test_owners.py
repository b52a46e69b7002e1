"""The owner store (embeddings and thresholds, never audio; whole or absent on a crash), the
combined decision, and the live loop acting on it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.actions import Actions, exit_code_for, run_live
from edge_runtime.atomic import PARTIAL_PREFIX
from edge_runtime.config import load_profile
from edge_runtime.errors import (
    EXIT_BONAFIDE,
    EXIT_NO_SPEECH,
    EXIT_NOT_OWNER,
    EXIT_SPOOF,
    ConfigError,
    OwnerError,
)
from edge_runtime.frontend import FrontendConfig
from edge_runtime.owners import (
    STORE_ENV,
    Owner,
    OwnerStore,
    check_name,
    default_store_dir,
    enrolment_embedding,
)
from edge_runtime.speech_presence import BONAFIDE, NOSPEECH, NOTOWNER, SPOOF
from edge_runtime.stream import LiveDetector
from edge_runtime.verify import OwnerCheck, owner_label
from tests.conftest import speech_like

REPO = Path(__file__).resolve().parents[1]


def owner(name: str = "alice", threshold: float = 0.7, seed: int = 0) -> Owner:
    vector = np.abs(np.random.default_rng(seed).normal(size=256))
    return Owner(name=name, embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
                 threshold=threshold, model_sha256="ab" * 32, clips=3,
                 enrolled="2026-11-27T12:00:00+00:00")


def test_a_record_round_trips_and_holds_no_audio(tmp_path: Path) -> None:
    store = OwnerStore(tmp_path / "owners")
    path = store.save(owner())
    assert path == tmp_path / "owners" / "alice.json"
    raw = json.loads(path.read_text())
    assert set(raw) == {"format_version", "name", "threshold", "score_scale", "model_sha256",
                        "clips", "enrolled", "embedding"}
    loaded = store.load("alice", model_sha256="ab" * 32, score_scale="cosine")
    assert np.allclose(loaded.embedding, owner().embedding, atol=1e-6)
    assert loaded.threshold == 0.7 and store.names() == ["alice"]


def test_a_threshold_on_another_score_scale_or_an_old_record_is_refused(tmp_path: Path) -> None:
    store = OwnerStore(tmp_path / "owners")
    path = store.save(owner())
    with pytest.raises(OwnerError, match="enrol again"):
        store.load("alice", score_scale="as-norm")
    raw = json.loads(path.read_text())
    raw["format_version"] = 1  # a cosine threshold from before score normalisation
    del raw["score_scale"]
    path.write_text(json.dumps(raw))
    with pytest.raises(OwnerError, match="enrol again"):
        store.load("alice")
    assert (tmp_path / "owners").stat().st_mode & 0o777 == 0o700


def test_unknown_owner_other_model_and_bad_records_are_clear_errors(tmp_path: Path) -> None:
    store = OwnerStore(tmp_path)
    with pytest.raises(OwnerError, match=r"not enrolled.*edge-detect enrol bob"):
        store.load("bob")
    store.save(owner())
    with pytest.raises(OwnerError, match="another speaker model"):
        store.load("alice", model_sha256="cd" * 32)
    (tmp_path / "carol.json").write_text('{"format_version": 1, "name": "carol"}')
    with pytest.raises(OwnerError, match="invalid owner record"):
        store.load("carol")
    (tmp_path / "dave.json").write_text("{not json")
    with pytest.raises(OwnerError, match="unreadable owner record"):
        store.load("dave")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../x", "x" * 65, "sp ace"])
def test_names_that_are_not_plain_file_names_are_refused(name: str) -> None:
    with pytest.raises(OwnerError, match="owner name"):
        check_name(name)


def test_default_store_is_per_user(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_store_dir() == tmp_path / "edge-detect" / "owners"
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "elsewhere"))
    assert default_store_dir() == tmp_path / "elsewhere"


def test_a_crash_mid_write_leaves_the_previous_record(tmp_path: Path) -> None:
    store = OwnerStore(tmp_path)
    store.save(owner(threshold=0.7))
    # A writer killed after writing half of the new record (SIGKILL: no cleanup runs).
    script = textwrap.dedent(f"""
        import os, signal
        import edge_runtime.atomic as atomic
        from pathlib import Path
        def dying_write(self, text, encoding=None):
            with open(self, "w") as handle:
                handle.write(text[: len(text) // 2])
                handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        Path.write_text = dying_write
        import numpy as np
        from edge_runtime.owners import Owner, OwnerStore
        v = np.ones(256, dtype=np.float32) / 16
        OwnerStore({str(tmp_path)!r}).save(Owner("alice", v, 0.9, "ab" * 32, 3, "now"))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert done.returncode == -9
    assert any(p.name.startswith(PARTIAL_PREFIX) for p in tmp_path.iterdir())
    assert store.load("alice").threshold == 0.7  # the old record, whole
    assert store.names() == ["alice"]
    store.save(owner(threshold=0.8))  # the next write clears the leftover
    assert not any(p.name.startswith(PARTIAL_PREFIX) for p in tmp_path.iterdir())
    assert store.load("alice").threshold == 0.8


def test_enrolment_embedding_is_the_normalised_mean_of_unit_vectors() -> None:
    a, b = np.array([3.0, 0.0]), np.array([0.0, 0.5])
    assert np.allclose(enrolment_embedding([a, b]), np.array([1.0, 1.0]) / np.sqrt(2))


def test_only_the_owners_bona_fide_speech_passes() -> None:
    match, stranger = OwnerCheck(0.9, 0.7), OwnerCheck(0.5, 0.7)
    assert owner_label(BONAFIDE, match) == BONAFIDE
    assert owner_label(BONAFIDE, stranger) == NOTOWNER
    assert owner_label(BONAFIDE, OwnerCheck(None, 0.7)) == NOTOWNER  # could not verify
    assert owner_label(BONAFIDE, None) == NOTOWNER
    assert owner_label(SPOOF, match) == SPOOF  # a clone of the owner is still a spoof
    assert owner_label(NOSPEECH, match) == NOSPEECH


def test_the_owner_spoof_threshold_redecides_spoof_from_the_score() -> None:
    match = OwnerCheck(0.9, 1.5, score=2.0)
    assert match.is_owner and not OwnerCheck(0.9, 1.5, score=1.0).is_owner
    assert owner_label(SPOOF, match, spoof_score=0.6, spoof_threshold=0.75) == BONAFIDE
    assert owner_label(SPOOF, match, spoof_score=0.8, spoof_threshold=0.75) == SPOOF
    assert owner_label(BONAFIDE, match, spoof_score=0.3, spoof_threshold=0.2) == SPOOF
    assert owner_label(NOSPEECH, match, spoof_score=0.1, spoof_threshold=0.75) == NOSPEECH
    # Only the owner's voice is let through: a stranger the detector calls spoof stays spoof.
    assert owner_label(SPOOF, None, spoof_score=0.6, spoof_threshold=0.75) == SPOOF
    assert owner_label(SPOOF, OwnerCheck(0.2, 1.5, score=0.0), 0.6, 0.75) == SPOOF
    assert owner_label(BONAFIDE, OwnerCheck(0.2, 1.5, score=0.0), 0.1, 0.75) == NOTOWNER
    assert owner_label(SPOOF, match, spoof_score=None, spoof_threshold=0.75) == SPOOF


def test_exit_codes_with_an_owner() -> None:
    assert exit_code_for([NOTOWNER]) == EXIT_NOT_OWNER
    assert exit_code_for([NOTOWNER, BONAFIDE]) == EXIT_BONAFIDE
    assert exit_code_for([NOTOWNER, SPOOF]) == EXIT_SPOOF
    assert exit_code_for([NOSPEECH, NOTOWNER]) == EXIT_NOT_OWNER
    assert exit_code_for([]) == EXIT_NO_SPEECH
    assert EXIT_NOT_OWNER not in (0, 1, 2, 3, 4)


def test_profile_owner_field(tmp_path: Path) -> None:
    profile = tmp_path / "lock.toml"
    profile.write_text('owner = "alice"\nowner_store = "owners"\n'
                       '[model]\nspeaker_model = "spk.tflite"\n')
    loaded = load_profile(profile)
    assert loaded.owner == "alice" and loaded.owner_store == tmp_path / "owners"
    assert loaded.model.speaker_model == tmp_path / "spk.tflite"
    profile.write_text('owner = "../etc"\n')
    with pytest.raises(ConfigError, match="owner"):
        load_profile(profile)
    assert load_profile(REPO / "firmware_config" / "voice-lock.toml").owner is None


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def score_window(self, features) -> float:
        return self.value


class FakeVerifier:
    """Stands in for OwnerVerifier: a fixed similarity, or a fault."""

    def __init__(self, similarity: float | None, fail: bool = False) -> None:
        self.similarity = similarity
        self.fail = fail
        self.calls: list[int] = []

    spoof_threshold = None

    def check(self, audio: np.ndarray, name: str = "audio") -> OwnerCheck:
        self.calls.append(audio.shape[0])
        if self.fail:
            raise RuntimeError("interpreter fault")
        return OwnerCheck(self.similarity, 0.7)

    def needs_check(self, detector_label: str) -> bool:
        return detector_label == BONAFIDE

    def label(self, detector_label: str, check: OwnerCheck | None,
              spoof_score: float | None) -> str:
        return owner_label(detector_label, check, spoof_score, self.spoof_threshold)


def live(score: float, verifier: FakeVerifier) -> LiveDetector:
    return LiveDetector(Constant(score), FrontendConfig(), threshold=0.5, owner=verifier)


def chunks(audio: np.ndarray, size: int = 1600):
    for start in range(0, audio.shape[0], size):
        yield audio[start: start + size]


UTTERANCE = np.concatenate([speech_like(2.0), np.zeros(32000, dtype=np.float32)])


@pytest.mark.parametrize(("score", "similarity", "code", "label"), [
    (0.1, 0.9, EXIT_BONAFIDE, BONAFIDE),
    (0.1, 0.3, EXIT_NOT_OWNER, NOTOWNER),
    (0.1, None, EXIT_NOT_OWNER, NOTOWNER),
    (0.9, 0.9, EXIT_SPOOF, SPOOF),
])
def test_live_decisions_combine_detection_and_verification(score, similarity, code,
                                                           label) -> None:
    verifier = FakeVerifier(similarity)
    out = io.StringIO()
    actions = Actions(out, as_json=True)
    assert run_live(chunks(UTTERANCE), live(score, verifier), actions, once=True) == code
    assert actions.decisions == [label]
    # The utterance's own audio is verified once, before its decision (an utterance shorter
    # than the detector's window has no spoof score yet, so a spoof is verified too).
    assert len(verifier.calls) == 1
    if verifier.calls:
        assert 1.5 * 16000 < verifier.calls[0] <= UTTERANCE.shape[0]
        event = json.loads(out.getvalue().splitlines()[-1])
        assert event["decision"] == label
        assert ("similarity" in event) == (similarity is not None and score < 0.5)


def test_the_voice_is_checked_before_the_decision_so_the_lock_does_not_wait() -> None:
    verifier = FakeVerifier(0.9)
    detector = live(0.1, verifier)
    events = [e for chunk in chunks(UTTERANCE) for e in detector.push(chunk)]
    assert [e.decision for e in events if e.decision] == [BONAFIDE]
    assert len(verifier.calls) == 1 and detector.owner_checks_at_decision == 0
    # The voice ends with the last speech block: the hangover's silence is not embedded.
    assert 1.6 * 16000 <= verifier.calls[0] <= 2.05 * 16000


def test_speech_after_the_early_check_is_checked_again() -> None:
    verifier = FakeVerifier(0.9)
    detector = live(0.1, verifier)
    pause = np.zeros(int(0.6 * 16000), dtype=np.float32)  # past the early check, < hangover
    audio = np.concatenate([speech_like(2.0), pause, speech_like(1.0, seed=1),
                            np.zeros(32000, dtype=np.float32)])
    events = [e for chunk in chunks(audio) for e in detector.push(chunk)]
    assert [e.decision for e in events if e.decision] == [BONAFIDE]
    assert len(verifier.calls) == 2 and verifier.calls[1] > verifier.calls[0] + 16000
    assert detector.owner_checks_at_decision == 0


def test_a_verification_fault_is_never_a_yes() -> None:
    with pytest.raises(RuntimeError):
        run_live(chunks(UTTERANCE), live(0.1, FakeVerifier(0.9, fail=True)),
                 Actions(io.StringIO()), once=True)


def test_gpio_and_hooks_act_only_on_the_owner(tmp_path: Path) -> None:
    pytest.importorskip("gpiozero")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from edge_runtime.actions import GpioLine, HookRunner

    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        line = GpioLine(17, trigger="bonafide", hold=5.0)
        pin = Device.pin_factory.pin(17)
        marker = tmp_path / "opened"
        hooks = HookRunner(None, f"touch {marker}", 5.0)
        actions = Actions(io.StringIO(), gpio=line, hooks=hooks)
        run_live(chunks(UTTERANCE), live(0.1, FakeVerifier(0.3)), actions, once=True)
        hooks.close()
        assert pin.state == 0 and not marker.exists()  # a stranger: the bolt stays shut
        actions = Actions(io.StringIO(), gpio=line, hooks=HookRunner(None, f"touch {marker}",
                                                                     5.0))
        run_live(chunks(UTTERANCE), live(0.1, FakeVerifier(0.9)), actions, once=True)
        assert pin.state == 1  # the owner: released
        actions.close(wait=False)
        assert marker.exists()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = previous
