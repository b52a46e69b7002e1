"""The speech gate: a lock never hears "bona fide" for a tone, music, noise or silence.

The non-speech fixtures are generated here (the same generators as the training set, with a
seed the data builder never uses). Detector scores are never hard-coded: the detector may be
replaced; what must hold is that nothing without speech exits 0.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from edge_runtime.actions import Actions, HookRunner, exit_code_for, run_live
from edge_runtime.cli import main
from edge_runtime.errors import (
    EXIT_BONAFIDE,
    EXIT_INPUT_ERROR,
    EXIT_NO_SPEECH,
    EXIT_RUNTIME_FAULT,
    EXIT_SPOOF,
    ModelError,
)
from edge_runtime.frontend import Frontend
from edge_runtime.model import (
    ROLE_SPEECH,
    SpeechModel,
    SpoofModel,
    default_speech_model_path,
    interpreter_class,
)
from edge_runtime.speech_presence import BONAFIDE, NOSPEECH, SPOOF, SpeechPresence
from edge_runtime.stream import LiveDetector, StreamingFrontend
from host_training import nonspeech
from tests.conftest import SAMPLES

RATE = 16000
TEST_SEED = 4242  # not a seed of `edge-train gate data`


def _clips() -> dict[str, np.ndarray]:
    """One clip per kind of non-speech the issue names, 3 s each."""
    rng = np.random.default_rng(TEST_SEED)
    t = np.arange(3 * RATE) / RATE
    clips = {
        "sine-440": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.5 * nonspeech.chirp(3 * RATE, rng, True),
        "dtmf": 0.4 * nonspeech.dtmf(3 * RATE, rng, True),
        "digital-silence": np.zeros(3 * RATE),
    }
    for kind in ("melody", "chord", "noise", "click", "hum", "silence", "mixture"):
        clips[kind] = nonspeech.synthetic_clip(kind, rng, test=True, seconds=3.0)
    square = np.sign(np.sin(2 * np.pi * np.repeat([262, 330, 392, 523], 3 * RATE // 4)
                            * t[: 3 * RATE // 4 * 4]))
    clips["square-melody"] = 0.3 * square
    for name, exponent in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        clips[f"{name}-noise"] = 0.1 * nonspeech.coloured_noise(3 * RATE, exponent, rng)
    return {name: np.asarray(audio, dtype=np.float32) for name, audio in clips.items()}


@pytest.fixture(scope="module")
def nonspeech_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("nonspeech")
    files = {}
    for name, audio in _clips().items():
        files[name] = folder / f"{name}.wav"
        sf.write(files[name], audio, RATE)
    if nonspeech.fluidsynth_available():
        midis = nonspeech.midi_files()
        fonts = [Path(f) for f in nonspeech.SOUNDFONTS["test"] if Path(f).is_file()]
        if midis and fonts:
            music = nonspeech.render_midi(midis[0], fonts[0])[RATE * 5 : RATE * 9]
            files["fluidsynth-music"] = folder / "music.wav"
            sf.write(files["fluidsynth-music"], music, RATE)
    return files


def _invoke(args: list[object]):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_no_speech_exit_code_is_its_own() -> None:
    codes = [EXIT_BONAFIDE, EXIT_SPOOF, EXIT_INPUT_ERROR, EXIT_RUNTIME_FAULT, EXIT_NO_SPEECH,
             130, 141, 143]
    assert EXIT_NO_SPEECH != 0 and len(set(codes)) == len(codes)
    assert exit_code_for([]) == EXIT_NO_SPEECH
    assert exit_code_for([NOSPEECH, NOSPEECH]) == EXIT_NO_SPEECH
    assert exit_code_for([NOSPEECH, BONAFIDE]) == EXIT_BONAFIDE
    assert exit_code_for([BONAFIDE, NOSPEECH, SPOOF]) == EXIT_SPOOF


def test_classify_never_exits_0_without_speech(nonspeech_files: dict[str, Path]) -> None:
    for name, path in nonspeech_files.items():
        result = _invoke(["classify", "--json", path])
        assert result.exit_code != EXIT_BONAFIDE, (name, result.output)
        line = json.loads(result.output.strip().splitlines()[-1])
        assert line["label"] == NOSPEECH, (name, line)
        assert result.exit_code == EXIT_NO_SPEECH, (name, result.output)


def test_run_once_never_exits_0_without_speech(nonspeech_files: dict[str, Path]) -> None:
    for name, path in nonspeech_files.items():
        result = _invoke(["run", "--input", path, "--fast", "--once", "--json"])
        assert result.exit_code != EXIT_BONAFIDE, (name, result.output)
        assert result.exit_code == EXIT_NO_SPEECH, (name, result.output)
        decisions = [json.loads(line)["decision"] for line in result.stdout.splitlines()
                     if line.startswith("{")]
        assert BONAFIDE not in decisions and SPOOF not in decisions, name


def test_run_without_once_exits_no_speech_for_a_tone(nonspeech_files: dict[str, Path]) -> None:
    result = _invoke(["run", "--input", nonspeech_files["sine-440"], "--fast",
                      "--decisions-only"])
    assert result.exit_code == EXIT_NO_SPEECH, result.output
    assert "no speech" in result.stdout


def test_demo_speech_is_heard_as_speech() -> None:
    clips = sorted(SAMPLES.glob("*.flac"))
    assert clips
    result = _invoke(["classify", "--json", *clips])
    labels = [json.loads(line)["label"] for line in result.output.strip().splitlines()]
    assert NOSPEECH not in labels, result.output
    assert result.exit_code in (EXIT_BONAFIDE, EXIT_SPOOF)


def test_a_spoof_among_no_speech_exits_1_and_no_speech_among_bona_fide_exits_4(
        nonspeech_files: dict[str, Path]) -> None:
    tone = nonspeech_files["sine-440"]
    result = _invoke(["classify", "--threshold", "0", SAMPLES / "spoof_piper_joe.flac", tone])
    assert result.exit_code == EXIT_SPOOF
    result = _invoke(["classify", "--threshold", "1", SAMPLES / "bonafide_ljspeech.flac", tone])
    assert result.exit_code == EXIT_NO_SPEECH
    result = _invoke(["classify", "--threshold", "1", SAMPLES / "bonafide_ljspeech.flac"])
    assert result.exit_code == EXIT_BONAFIDE


def test_gate_features_from_the_detector_stft_equal_its_own_front_end(
        shipped_model_path: Path) -> None:
    detector = SpoofModel(shipped_model_path)
    gate = SpeechPresence.load(detector.frontend_config)
    window = _clips()["chord"][: detector.frontend_config.window_samples]
    window = np.resize(window, detector.frontend_config.window_samples)
    shared = gate.features_from_power(Frontend(detector.frontend_config).power_frames(window))
    np.testing.assert_allclose(shared, gate.frontend.window_features(window), atol=1e-4)


def test_streamed_gate_window_equals_the_offline_one(shipped_model_path: Path) -> None:
    detector = SpoofModel(shipped_model_path)
    gate = SpeechPresence.load(detector.frontend_config)
    config = detector.frontend_config
    audio = np.resize(_clips()["melody"], config.window_samples + 5000)
    stream = StreamingFrontend(config, gate.frontend)
    for start in range(0, audio.shape[0], 1234):
        stream.push(audio[start : start + 1234])
    # The ring's window starts at its first frame; samples past its last frame are unused.
    start = (stream.frames_seen - config.frames_per_window) * config.hop_length
    window = audio[start : start + config.window_samples]
    window = np.pad(window, (0, config.window_samples - window.shape[0]))
    np.testing.assert_allclose(stream.gate_window(), gate.frontend.window_features(window),
                               atol=1e-3)


def test_gate_is_full_int8_with_its_role(shipped_model_path: Path) -> None:
    gate = SpeechModel()
    assert gate.card.extra["role"] == ROLE_SPEECH
    interpreter_type, _ = interpreter_class()
    interpreter = interpreter_type(model_path=str(default_speech_model_path()))
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, dtypes
    with pytest.raises(ModelError, match="speech_presence"):
        SpoofModel(default_speech_model_path())
    with pytest.raises(ModelError, match="'spoof' model"):
        SpeechModel(shipped_model_path)


def test_gate_with_other_framing_is_refused(shipped_model_path: Path) -> None:
    from dataclasses import replace

    detector = SpoofModel(shipped_model_path)
    other = replace(detector.frontend_config, hop_length=detector.frontend_config.hop_length * 2)
    with pytest.raises(ModelError, match="hop_length"):
        SpeechPresence.load(other)


def test_classify_rejects_the_gate_as_the_detector() -> None:
    result = _invoke(["classify", "--model", default_speech_model_path(),
                      SAMPLES / "bonafide_ljspeech.flac"])
    assert result.exit_code == EXIT_RUNTIME_FAULT
    assert "speech_presence" in result.output


# --- live decisions, with stand-in models -------------------------------------------------

class _ConstantModel:
    def __init__(self, value: float) -> None:
        self.value = value

    def score_window(self, features: np.ndarray) -> float:
        return self.value


class _StubGate:
    """What LiveDetector needs of SpeechPresence, with a fixed speech probability."""

    def __init__(self, config, probability: float, threshold: float = 0.5) -> None:
        self.frontend = Frontend(config)
        self.probability = probability
        self.threshold = threshold

    def score_features(self, features: np.ndarray) -> float:
        return self.probability

    def score_power(self, power: np.ndarray) -> float:
        return self.probability

    def is_speech(self, scores) -> bool:
        return bool(scores) and float(np.mean(scores)) >= self.threshold


def _gate_config(detector_config):
    from host_training.speech_gate import gate_frontend_config

    return gate_frontend_config(detector_config)


@pytest.mark.parametrize(("speech_probability", "decision", "code"), [
    (0.1, NOSPEECH, EXIT_NO_SPEECH), (0.9, BONAFIDE, EXIT_BONAFIDE)])
def test_live_decision_needs_speech_and_hooks_act_only_on_speech(
        tmp_path: Path, speech_probability: float, decision: str, code: int) -> None:
    from edge_runtime.frontend import FrontendConfig

    config = FrontendConfig(n_bands=128, scale="linear", remove_frame_dc=True)
    gate = _StubGate(_gate_config(config), speech_probability)
    detector = LiveDetector(_ConstantModel(0.0), config, threshold=0.5, speech=gate)
    marker = tmp_path / "hook-ran"
    hooks = HookRunner(on_spoof=f"touch {marker}-spoof", on_bonafide=f"touch {marker}",
                       timeout=5.0)
    events = []

    class Recorder(Actions):
        def handle(self, event) -> None:
            events.append(event)
            super().handle(event)

    import io

    actions = Recorder(io.StringIO(), as_json=True, hooks=hooks)
    audio = 0.3 * np.sin(2 * np.pi * 220 * np.arange(5 * RATE) / RATE).astype(np.float32)
    silence = np.zeros(2 * RATE, dtype=np.float32)
    result = run_live([audio, silence], detector, actions, once=True)
    actions.close()
    assert result == code
    decided = [e for e in events if e.decision is not None]
    assert [e.decision for e in decided] == [decision]
    assert decided[0].speech_score == pytest.approx(speech_probability)
    assert marker.exists() == (decision == BONAFIDE)
    assert not Path(f"{marker}-spoof").exists()


def test_gpio_never_opens_for_no_speech() -> None:
    pytest.importorskip("gpiozero")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from edge_runtime.actions import GpioLine

    Device.pin_factory = MockFactory()
    line = GpioLine(17, trigger="bonafide", hold=0.05)
    try:
        line.on_decision(NOSPEECH)
        assert not line.active
        line.on_decision(BONAFIDE)
        assert line.active
    finally:
        line.close(wait=False)
    assert threading.active_count() >= 1


def test_once_on_a_stream_that_ends_silent_exits_no_speech(shipped_model_path: Path,
                                                          write_audio) -> None:
    path = write_audio("quiet.wav", np.zeros(RATE, dtype=np.float32))
    result = _invoke(["run", "--input", path, "--fast", "--once"])
    assert result.exit_code == EXIT_NO_SPEECH, result.output


# --- the gate's schedule: windows a window apart, never a stretch of audio left unjudged ----

def test_schedule_gates_the_first_every_second_the_last_and_after_silence() -> None:
    from edge_runtime.speech_presence import GateSchedule

    schedule = GateSchedule(2)
    assert [schedule.due() for _ in range(5)] == [True, False, True, False, True]
    assert schedule.due(last=True)  # would have been skipped
    schedule.skip()  # a silent window: the one after it is judged
    assert schedule.due()
    schedule.reset()
    assert schedule.due()
    assert all(GateSchedule(1).due() for _ in range(4))


@pytest.mark.parametrize("hop_fraction", [1.0, 0.75, 0.5, 0.25, 0.1])
def test_gated_windows_stay_within_one_window_of_each_other(hop_fraction: float) -> None:
    from edge_runtime.speech_presence import gate_stride

    window = 64000
    hop = int(window * hop_fraction)
    stride = gate_stride(window, hop)
    assert stride >= 1
    assert stride * hop <= window < (stride + 1) * hop


def _gated_cover(lengths_and_gaps: list[tuple[int, bool]], window: int, hop: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Audio of loud and silent stretches, cut as ClipScorer cuts it; which samples have
    signal and which ones some gated window covers."""
    from edge_runtime.audio import split_windows
    from edge_runtime.clip import has_signal
    from edge_runtime.speech_presence import GateSchedule, gate_stride

    rng = np.random.default_rng(5)
    audio = np.concatenate([
        (0.2 * rng.standard_normal(n) if loud else np.zeros(n)).astype(np.float32)
        for n, loud in lengths_and_gaps])
    covered = np.zeros(audio.shape[0], dtype=bool)
    schedule = GateSchedule(gate_stride(window, hop))
    chunks = split_windows(audio, window, hop)
    starts = list(range(0, max(1, audio.shape[0] - window + 1), hop))
    if audio.shape[0] > window and starts[-1] + window < audio.shape[0]:
        starts.append(audio.shape[0] - window)
    assert len(starts) == len(chunks)
    for number, (start, chunk) in enumerate(zip(starts, chunks, strict=True)):
        if not has_signal(chunk):
            schedule.skip()
        elif schedule.due(last=number == len(chunks) - 1):
            covered[start : start + window] = True
    return np.abs(audio) > 0, covered


@pytest.mark.parametrize("stretches", [
    [(100_000, True)],
    [(64_000, True)],
    [(130_001, True)],
    [(40_000, True), (200_000, False), (70_000, True)],
    [(10_000, True), (97_000, False), (33_000, True), (150_000, False), (5_000, True)],
])
def test_every_sample_with_signal_is_under_a_gated_window(stretches) -> None:
    signal, covered = _gated_cover(stretches, 64000, 32000)
    assert np.all(covered[signal])


def test_clip_scorer_gates_every_second_window_and_the_last() -> None:
    from edge_runtime.clip import ClipScorer
    from edge_runtime.frontend import FrontendConfig

    config = FrontendConfig(n_bands=128, scale="linear", remove_frame_dc=True)

    class Detector(_ConstantModel):
        frontend_config = config
        threshold = 0.5

    class CountingGate(_StubGate):
        calls = 0

        def score_power(self, power: np.ndarray) -> float:
            CountingGate.calls += 1
            return self.probability

    scorer = ClipScorer(Detector(0.0), speech=CountingGate(_gate_config(config), 0.9))
    rng = np.random.default_rng(1)
    # 10 s: windows start at 0, 2, 4 and (end-aligned) 6 s; 0, 4 and the last one are gated.
    result = scorer.score_audio(0.1 * rng.standard_normal(10 * RATE).astype(np.float32))
    assert len(result.window_scores) == 4
    assert CountingGate.calls == len(result.speech_scores) == 3
    assert result.label == BONAFIDE


def test_live_utterance_ending_on_a_skipped_window_is_judged_there() -> None:
    from edge_runtime.frontend import FrontendConfig

    config = FrontendConfig(n_bands=128, scale="linear", remove_frame_dc=True)
    gate = _StubGate(_gate_config(config), 0.9)
    judged: list[np.ndarray] = []
    original = gate.score_features

    def recording(features: np.ndarray) -> float:
        judged.append(features)
        return original(features)

    gate.score_features = recording  # type: ignore[method-assign]
    detector = LiveDetector(_ConstantModel(0.0), config, threshold=0.5, speech=gate,
                            hop_seconds=0.5)
    rng = np.random.default_rng(2)
    # 6 s of sound, then silence: windows end every 0.5 s from 4.0 s until the hangover closes
    # the utterance after the window ending at 6.5 s. Eight 0.5 s hops fit in a 4 s window, so
    # the schedule gates the first window only, and the decision judges the window ending at
    # 6.5 s, which it skipped: together they cover all 6.5 s.
    audio = (0.2 * rng.standard_normal(6 * RATE)).astype(np.float32)
    events = detector.push(audio) + detector.push(np.zeros(2 * RATE, dtype=np.float32))
    events += detector.flush()
    scored = [e for e in events if e.decision is None]
    decided = [e for e in events if e.decision is not None]
    assert [e.t for e in scored] == [4.0, 4.5, 5.0, 5.5, 6.0, 6.5]
    assert [e.speech_score is not None for e in scored] == [True] + [False] * 5
    assert len(decided) == 1 and decided[0].decision == BONAFIDE
    assert len(judged) == 2
