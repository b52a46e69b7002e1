"""Streaming: features equal the offline front end; gate, smoothing, utterances, decisions."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.frontend import Frontend, FrontendConfig
from edge_runtime.stream import (
    AudioRing,
    LiveDetector,
    ScoreSmoother,
    SpeechGate,
    StreamingFrontend,
)
from tests.conftest import speech_like

RATE = 16000


class LevelScorer:
    """A deterministic stand-in for the model that depends on the whole feature window: the
    score moves with the spectral balance of the window, so any change in the features shows.
    Records every window it is given."""

    def __init__(self) -> None:
        self.windows: list[np.ndarray] = []

    def score_window(self, features: np.ndarray) -> float:
        self.windows.append(features.copy())
        low, high = features[:, :20].mean(), features[:, 60:].mean()
        return float(1.0 / (1.0 + np.exp(-(low - high) / 20.0)))


class ConstantScorer:
    def __init__(self, value: float) -> None:
        self.value = value
        self.calls = 0

    def score_window(self, features: np.ndarray) -> float:
        self.calls += 1
        return self.value


def silence(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1e-4 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def chunked(audio: np.ndarray, seed: int, low: int = 1, high: int = 5000):
    rng = np.random.default_rng(seed)
    start = 0
    while start < audio.shape[0]:
        size = int(rng.integers(low, high))
        yield audio[start : start + size]
        start += size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_features_equal_offline_front_end(seed: int) -> None:
    config = FrontendConfig()
    audio = speech_like(7.3, seed=seed)
    stream = StreamingFrontend(config)
    offline = Frontend(config)
    checked = 0
    for chunk in chunked(audio, seed):
        stream.push(chunk)
        if not stream.ready:
            continue
        start = (stream.frames_seen - config.frames_per_window) * config.hop_length
        expected = offline.window_features(audio[start : start + config.window_samples])
        np.testing.assert_allclose(stream.window(), expected, rtol=0, atol=1e-4)
        checked += 1
    assert checked > 10


def test_audio_ring_keeps_the_latest_samples() -> None:
    ring = AudioRing(1000)
    data = np.arange(3500, dtype=np.float32)
    for piece in np.array_split(data, 17):
        ring.extend(piece)
    np.testing.assert_array_equal(ring.since(3000), data[3000:])
    np.testing.assert_array_equal(ring.since(0), data[-1000:])  # older samples are gone
    assert ring.since(3500).size == 0
    ring.extend(np.arange(5000, dtype=np.float32))  # larger than the ring at once
    np.testing.assert_array_equal(ring.since(0), np.arange(4000, 5000, dtype=np.float32))


def test_energy_gate_separates_speech_from_silence_and_learns_steady_noise() -> None:
    gate = SpeechGate(RATE)
    quiet = silence(1.0)
    blocks = quiet.reshape(-1, gate.block)
    assert not any(gate.block_is_speech(b) for b in blocks)
    voiced = (0.3 * np.sin(2 * np.pi * 200 * np.arange(gate.block) / RATE)).astype(np.float32)
    assert gate.block_is_speech(voiced)
    # A steady hum far above the absolute floor: speech at first, then part of the noise floor.
    hum = np.tile(0.05 * voiced / 0.3, 3000)
    flags = [gate.block_is_speech(b) for b in hum.reshape(-1, gate.block)]
    assert flags[0] and not flags[-1]


def test_gate_off_and_missing_webrtcvad() -> None:
    assert SpeechGate(RATE, kind="off").block_is_speech(np.zeros(160, np.float32))
    try:
        import webrtcvad  # noqa: F401
    except ImportError:
        from edge_runtime.errors import ConfigError

        with pytest.raises(ConfigError, match="webrtcvad"):
            SpeechGate(RATE, kind="webrtcvad")
    else:
        gate = SpeechGate(RATE, kind="webrtcvad")
        assert not gate.block_is_speech(np.zeros(160, np.float32))


def test_mean_smoother_decides_on_the_peak_moving_average() -> None:
    smoother = ScoreSmoother(0.5, method="mean", n=3)
    assert smoother.add(0.9) is None and smoother.add(0.1) is None  # not enough windows yet
    assert smoother.add(0.2) == pytest.approx(0.4)
    assert smoother.add(0.1) == pytest.approx(0.4 / 3)
    assert smoother.utterance_score == pytest.approx(0.4)
    assert smoother.decision() == "bonafide"
    smoother.add(0.9)
    smoother.add(0.9)
    assert smoother.decision() == "spoof"  # (0.1 + 0.9 + 0.9) / 3 >= 0.5


def test_k_of_n_smoother_needs_k_windows_over_the_threshold() -> None:
    smoother = ScoreSmoother(0.5, method="k_of_n", n=3, k=2)
    for score in (0.9, 0.1, 0.2, 0.1):
        smoother.add(score)
    assert smoother.decision() == "bonafide"  # never 2 of 3 at or above 0.5
    smoother.add(0.6)
    assert smoother.decision() == "bonafide"
    smoother.add(0.7)
    assert smoother.decision() == "spoof"
    assert smoother.utterance_score == pytest.approx(0.6)


def test_short_utterances_are_judged_on_all_their_windows() -> None:
    one = ScoreSmoother(0.5, method="k_of_n", n=5, k=3)
    one.add(0.8)
    assert one.decision() == "spoof"  # a single spoofed window is not waved through
    two = ScoreSmoother(0.5, method="k_of_n", n=5, k=3)
    two.add(0.8)
    two.add(0.3)
    assert two.decision() == "bonafide"
    mean = ScoreSmoother(0.5, method="mean", n=5)
    mean.add(0.8)
    mean.add(0.3)
    assert mean.utterance_score == pytest.approx(0.55)
    assert ScoreSmoother(0.5).decision() is None


def make_detector(scorer, **kwargs) -> LiveDetector:
    config = FrontendConfig()
    return LiveDetector(scorer, config, threshold=kwargs.pop("threshold", 0.5), **kwargs)


def run_all(detector: LiveDetector, audio: np.ndarray, seed: int = 0) -> list:
    events = []
    for chunk in chunked(audio, seed, 50, 3000):
        events.extend(detector.push(chunk))
    events.extend(detector.flush())
    return events


def test_one_decision_per_utterance_with_its_boundaries() -> None:
    audio = np.concatenate([silence(5.0), speech_like(3.0, seed=3), silence(2.0),
                            speech_like(2.0, seed=4), silence(2.0)])
    scorer = ConstantScorer(0.7)
    events = run_all(make_detector(scorer, hop_seconds=0.5), audio)
    decisions = [e for e in events if e.decision]
    assert [d.decision for d in decisions] == ["spoof", "spoof"]
    (s1, e1), (s2, e2) = decisions[0].utterance, decisions[1].utterance
    assert 4.9 <= s1 <= 5.3 and 8.0 <= e1 <= 9.0
    assert 9.9 <= s2 <= 10.3 and 12.0 <= e2 <= 13.0
    assert decisions[1].speech is False  # closed by silence
    windows = [e for e in events if e.decision is None]
    # Windows are scored only while an utterance is open: none during the 5 s of silence.
    assert all(w.t >= s1 for w in windows)
    assert scorer.calls == len(windows)


def test_silence_is_never_scored() -> None:
    scorer = ConstantScorer(0.9)
    events = run_all(make_detector(scorer), silence(12.0))
    assert events == [] and scorer.calls == 0


def test_results_do_not_depend_on_chunking() -> None:
    audio = np.concatenate([silence(1.0), speech_like(6.0, seed=5), silence(1.5)])
    runs = []
    for seed in (0, 1, 2):
        events = run_all(make_detector(LevelScorer(), hop_seconds=0.3), audio, seed)
        runs.append([(round(e.t, 4), e.score, e.decision) for e in events])
    assert runs[0] == runs[1] == runs[2]
    assert any(d for _, _, d in runs[0])


def test_window_features_are_the_offline_features_of_the_same_audio() -> None:
    audio = np.concatenate([silence(0.5), speech_like(6.0, seed=6)])
    scorer = LevelScorer()
    detector = make_detector(scorer, hop_seconds=0.5)
    events = run_all(detector, audio)
    offline = Frontend(FrontendConfig())
    config = offline.config
    window_events = [e for e in events if e.decision is None]
    assert len(window_events) >= 4
    for event, features in zip(window_events, scorer.windows, strict=True):
        frames_seen = round(event.t * RATE) // 160  # scoring happens on block boundaries
        frames_seen = 1 + (frames_seen * 160 - config.n_fft) // config.hop_length
        start = (frames_seen - config.frames_per_window) * config.hop_length
        expected = offline.window_features(audio[start : start + config.window_samples])
        np.testing.assert_allclose(features, expected, atol=1e-4)


def test_stream_shorter_than_a_window_is_repeat_padded_like_a_clip() -> None:
    audio = speech_like(2.5, seed=7)
    scorer = LevelScorer()
    events = run_all(make_detector(scorer), audio)
    decision = events[-1]
    assert decision.decision is not None and decision.windows == 1
    from edge_runtime.audio import fit_to_window

    expected = Frontend().window_features(fit_to_window(audio, 64000))
    np.testing.assert_allclose(scorer.windows[0], expected, atol=1e-4)


def test_long_speech_is_cut_at_max_utterance() -> None:
    scorer = ConstantScorer(0.2)
    events = run_all(make_detector(scorer, max_utterance=3.0), speech_like(11.0, seed=8))
    decisions = [e for e in events if e.decision]
    assert len(decisions) >= 3
    assert all(d.decision == "bonafide" for d in decisions)
    assert all(d.utterance[1] - d.utterance[0] <= 3.0 + 1e-6 for d in decisions)


def test_reset_drops_the_open_utterance_and_keeps_time() -> None:
    detector = make_detector(ConstantScorer(0.9))
    detector.push(speech_like(5.0, seed=9))
    assert detector.in_utterance
    detector.reset()
    assert not detector.in_utterance and detector.flush() == []
    events = detector.push(np.concatenate([speech_like(5.0, seed=10), silence(1.5)]))
    decision = next(e for e in events if e.decision)
    assert decision.utterance[0] >= 5.0  # times continue across the gap


def test_clips_hold_the_utterance_audio() -> None:
    speech = speech_like(4.5, seed=11)
    audio = np.concatenate([silence(2.0), speech, silence(1.5)])
    events = run_all(make_detector(ConstantScorer(0.9), keep_clips=True), audio)
    decision = next(e for e in events if e.decision)
    start, end = decision.utterance
    assert decision.clip is not None
    assert decision.clip.shape[0] == round((end - start) * RATE)
    begin = round(start * RATE)
    np.testing.assert_array_equal(decision.clip, audio[begin : begin + decision.clip.shape[0]])


def test_real_model_scores_match_offline_scoring(shipped_model_path) -> None:
    from edge_runtime.model import SpoofModel

    model = SpoofModel(shipped_model_path)
    audio = speech_like(6.0, seed=12)
    detector = LiveDetector(model, model.frontend_config, model.threshold, hop_seconds=1.0)
    events = run_all(detector, audio)
    windows = [e for e in events if e.decision is None]
    assert windows
    offline = Frontend(model.frontend_config)
    for event in windows[:2]:
        end_frames = 1 + (round(event.t * RATE) - 512) // 160
        start = (end_frames - 397) * 160
        expected = model.score_window(offline.window_features(audio[start : start + 64000]))
        assert event.score == pytest.approx(expected, abs=1e-6)
    decision = events[-1]
    assert decision.decision == ("spoof" if decision.score >= model.threshold else "bonafide")
