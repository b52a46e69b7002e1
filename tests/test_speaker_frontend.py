"""The speaker embedder's NumPy front end against librosa (the oracle), and its partial and
silence rules."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.speaker_frontend import (
    EMBEDDER_FRONTEND,
    SpeakerFrontend,
    SpeakerFrontendConfig,
    raise_loudness,
    voiced_samples,
)
from tests.conftest import speech_like


def test_mel_power_matches_librosa_as_the_embedder_was_trained() -> None:
    librosa = pytest.importorskip("librosa")
    audio = speech_like(2.0, seed=3)
    ours = SpeakerFrontend().mel_power(audio)
    # Resemblyzer's wav_to_mel_spectrogram, with the kit's valid framing (center=False).
    oracle = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=400, hop_length=160,
                                            n_mels=40, center=False).T
    assert ours.shape == oracle.shape == (1 + (32000 - 400) // 160, 40)
    assert np.allclose(ours, oracle, rtol=1e-3, atol=1e-6 * oracle.max())


def test_one_partial_is_160_frames_of_40_bands() -> None:
    assert EMBEDDER_FRONTEND.feature_shape == (160, 40)


def test_loudness_is_raised_to_the_target_but_never_lowered() -> None:
    quiet = 0.001 * speech_like(1.0)
    raised = raise_loudness(quiet, -30.0)
    assert 10 * np.log10(np.mean(raised.astype(np.float64) ** 2)) == pytest.approx(-30.0, abs=0.01)
    loud = 0.9 * speech_like(1.0) / np.abs(speech_like(1.0)).max()
    assert raise_loudness(loud, -30.0) is loud
    silent = np.zeros(100, dtype=np.float32)
    assert raise_loudness(silent, -30.0) is silent


def test_long_silences_are_cut_and_short_pauses_kept() -> None:
    config = SpeakerFrontendConfig()
    speech = speech_like(1.0)
    gap = np.zeros(16000, dtype=np.float32)  # 1 s: far longer than the allowed pause
    kept = voiced_samples(np.concatenate([speech, gap, speech]), 16000, config)
    assert 1.9 * 16000 <= kept.shape[0] <= 2.5 * 16000
    pause = np.zeros(1600, dtype=np.float32)  # 100 ms between words
    kept = voiced_samples(np.concatenate([speech, pause, speech]), 16000, config)
    assert kept.shape[0] >= 2.0 * 16000


def test_partials_cover_the_clip_and_their_number_is_bounded() -> None:
    frontend = SpeakerFrontend()
    assert frontend.partial_starts(100) == [0]  # shorter than one partial: one, zero-padded
    starts = frontend.partial_starts(400)
    assert starts[0] == 0 and np.all(np.diff(starts) == 77)
    assert 400 - starts[-1] >= 0.75 * 160  # the last is at least 75 % audio
    assert len(frontend.partial_starts(100_000)) == SpeakerFrontendConfig().max_partials
    partials = frontend.partials(speech_like(0.5))
    assert partials.shape == (1, 160, 40) and np.all(partials[0, 60:] == 0)
