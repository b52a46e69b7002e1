"""edge_runtime.frontend against librosa (the test oracle), and its properties over random
audio; edge_runtime.stream.StreamingFrontend against the offline front end for any chunking.

Measured on this machine against librosa.feature.melspectrogram + power_to_db (center=False,
same parameters): in bands within 60 dB of their frame's loudest band the log-mel frames differ
by at most 6.5e-5 dB (the four demo clips); over all bands by at most 2.1e-3 dB
(bonafide_ljspeech.flac, a band 103 dB below its frame's peak) and 8.4e-5 dB on the synthetic
speech. The larger figure is float32 rounding in our FFT: librosa windows and transforms in
float64 before casting, and against a float64 reference ours differs by 2.0e-3 dB, librosa's
float32 output by 1.4e-5 dB. Both are far below the model's input quantisation step (~0.6 dB).
The filterbank equals librosa.filters.mel to float32 rounding.
"""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_runtime.audio import load_audio
from edge_runtime.frontend import Frontend, FrontendConfig, filterbank
from edge_runtime.stream import StreamingFrontend
from tests.conftest import SAMPLES, speech_like

CONFIG = FrontendConfig()
FRONTEND = Frontend(CONFIG)
# Bounds with headroom over the figures measured above (see the module docstring).
MAX_DB_DIFFERENCE = 5e-3
MAX_DB_DIFFERENCE_WITHIN_60_DB = 2e-4


def librosa_log_mel(audio: np.ndarray, config: FrontendConfig) -> np.ndarray:
    power = librosa.feature.melspectrogram(
        y=audio, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window="hann", center=False, power=2.0,
        n_mels=config.n_bands, fmin=config.fmin, fmax=config.fmax, htk=False, norm="slaney",
    )
    return librosa.power_to_db(power, ref=1.0, amin=config.log_floor, top_db=None).T


def test_filterbank_equals_librosa_mel() -> None:
    ours = filterbank(CONFIG)
    theirs = librosa.filters.mel(sr=CONFIG.sample_rate, n_fft=CONFIG.n_fft,
                                 n_mels=CONFIG.n_bands, fmin=CONFIG.fmin, fmax=CONFIG.fmax,
                                 htk=False, norm="slaney").T
    assert ours.shape == theirs.shape == (CONFIG.n_fft // 2 + 1, CONFIG.n_bands)
    assert np.max(np.abs(ours - theirs)) <= 1e-6 * np.max(np.abs(theirs))


@pytest.mark.parametrize("source", ["speech_like", "bonafide_ljspeech.flac",
                                    "spoof_piper_joe.flac"])
def test_log_mel_equals_librosa(source: str) -> None:
    audio = speech_like(4.0) if source == "speech_like" else load_audio(SAMPLES / source)
    ours = FRONTEND.log_frames(audio)
    theirs = librosa_log_mel(audio, CONFIG)
    assert ours.shape == theirs.shape
    difference = np.abs(ours - theirs)
    loud = ours >= ours.max(axis=1, keepdims=True) - 60.0
    print(f"{source}: max |ours - librosa| = {difference.max():.2e} dB, "
          f"{difference[loud].max():.2e} dB within 60 dB of the frame peak")
    assert difference.max() < MAX_DB_DIFFERENCE
    assert difference[loud].max() < MAX_DB_DIFFERENCE_WITHIN_60_DB


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(512, 24000),
       level=st.floats(1e-3, 10.0))
def test_log_mel_equals_librosa_on_random_noise(seed: int, length: int, level: float) -> None:
    audio = (np.random.default_rng(seed).standard_normal(length) * level).astype(np.float32)
    difference = np.max(np.abs(FRONTEND.log_frames(audio) - librosa_log_mel(audio, CONFIG)))
    assert difference < MAX_DB_DIFFERENCE


finite_audio = hnp.arrays(
    np.float32, st.integers(0, 4000),
    elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32),
)


@settings(max_examples=100, deadline=None)
@given(audio=finite_audio)
def test_log_frames_shape_and_finiteness(audio: np.ndarray) -> None:
    frames = FRONTEND.log_frames(audio)
    expected = 0 if audio.shape[0] < CONFIG.n_fft else 1 + (audio.shape[0] - 512) // 160
    assert frames.shape == (expected, CONFIG.n_bands)
    assert frames.dtype == np.float32
    assert np.all(np.isfinite(frames))
    # Nothing falls below the log floor (-100 dB for 1e-10).
    assert np.all(frames >= 10 * np.log10(CONFIG.log_floor) - 1e-3)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level=st.floats(1e-2, 1.0),
       gain_db=st.floats(-40.0, 40.0))
def test_window_features_are_gain_invariant(seed: int, level: float, gain_db: float) -> None:
    """window_mean normalisation: a gain is an additive constant in dB, subtracted away.

    Exact only above the log floor: a quiet band pushed 40 dB further down can reach the
    -100 dB floor (seed 12352, level 0.01, -36 dB did), so this property is checked with a
    floor far below anything these signals reach."""
    frontend = Frontend(replace(CONFIG, log_floor=1e-30))
    rng = np.random.default_rng(seed)
    window = (rng.standard_normal(CONFIG.window_samples) * level).astype(np.float32)
    gain = np.float32(10 ** (gain_db / 20))
    features = frontend.window_features(window)
    scaled = frontend.window_features(window * gain)
    assert features.shape == CONFIG.feature_shape
    assert np.all(np.isfinite(features))
    assert abs(float(features.mean())) < 1e-4
    assert np.max(np.abs(features - scaled)) < 1e-3


def test_band_mean_removes_a_fixed_response_per_band() -> None:
    """band_mean: every band's mean over the window is 0, so a fixed equaliser (a constant per
    band in the log domain) leaves the features as they were, while window_mean keeps it."""
    from scipy.signal import firwin, lfilter

    window = speech_like(4.0).astype(np.float64)
    coloured = lfilter(firwin(63, 2000, fs=16000, pass_zero=False), 1.0, window) + 0.3 * window
    per_band = Frontend(replace(CONFIG, normalization="band_mean", log_floor=1e-30))
    whole = Frontend(replace(CONFIG, normalization="window_mean", log_floor=1e-30))
    features = per_band.window_features(window.astype(np.float32))
    assert np.abs(features.mean(axis=0)).max() < 1e-4
    # the filter's transient and the bands' leakage make it approximate, not exact
    change = np.abs(per_band.window_features(coloured.astype(np.float32)) - features).mean()
    whole_change = np.abs(whole.window_features(coloured.astype(np.float32))
                          - whole.window_features(window.astype(np.float32))).mean()
    assert change < 0.2 * whole_change


def test_gain_is_not_removed_without_normalisation() -> None:
    """The invariance above is the normalisation's doing, not an accident of the test."""
    frontend = Frontend(FrontendConfig(normalization="none"))
    window = speech_like(4.0)
    shift = frontend.window_features(window * 10) - frontend.window_features(window)
    assert np.allclose(shift[shift > -50], 20.0, atol=1e-2)


def test_linear_scale_bands_are_evenly_spaced_and_place_a_tone() -> None:
    config = FrontendConfig(scale="linear")
    weights = filterbank(config)
    bin_hz = config.sample_rate / config.n_fft
    peaks = np.argmax(weights, axis=0) * bin_hz
    step = (config.fmax - config.fmin) / (config.n_bands + 1)
    centres = config.fmin + step * np.arange(1, config.n_bands + 1)
    # Each triangle peaks at its centre, to the FFT's bin resolution.
    assert np.all(np.abs(peaks - centres) <= bin_hz / 2 + 1e-6)
    # Area normalisation: every triangle integrates to about 1 over Hz.
    assert np.allclose(weights.sum(axis=0) * bin_hz, 1.0, atol=0.1)
    t = np.arange(config.window_samples) / config.sample_rate
    for tone in (300.0, 1000.0, 5000.0):
        frames = Frontend(config).log_frames(np.sin(2 * np.pi * tone * t).astype(np.float32))
        loudest = int(np.argmax(frames.mean(axis=0)))
        assert abs(centres[loudest] - tone) <= step


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    extra=st.integers(0, 40000),
    chunks=st.lists(st.one_of(st.integers(1, 64), st.integers(1, 20000)), min_size=1,
                    max_size=6),
    checks=st.integers(1, 4),
)
def test_streaming_frontend_matches_offline_for_any_chunking(
    seed: int, extra: int, chunks: list[int], checks: int
) -> None:
    audio = (np.random.default_rng(seed).standard_normal(CONFIG.window_samples + extra)
             * 0.1).astype(np.float32)
    ends, position, k = [], 0, 0
    while position < audio.shape[0]:
        position = min(audio.shape[0], position + chunks[k % len(chunks)])
        ends.append(position)
        k += 1
    ready = [i for i, end in enumerate(ends) if FRONTEND.n_frames(end)
             >= CONFIG.frames_per_window]
    # Offline features cost a whole window each: compare at a few pushes, always the last.
    compare = {ready[-1], *ready[:: max(1, len(ready) // checks)]}
    stream = StreamingFrontend(CONFIG)
    start_of_chunk = 0
    for i, end in enumerate(ends):
        stream.push(audio[start_of_chunk:end])
        start_of_chunk = end
        assert stream.ready == (i >= ready[0])
        if i in compare:
            frames = FRONTEND.n_frames(end)
            start = (frames - CONFIG.frames_per_window) * CONFIG.hop_length
            # A window's frames span 396 hops + n_fft = 63872 samples; the last 128 of its
            # 64000 samples fall in no frame, so they may not have arrived yet.
            window = np.zeros(CONFIG.window_samples, dtype=np.float32)
            covered = audio[start : start + CONFIG.window_samples]
            window[: covered.shape[0]] = covered
            offline = FRONTEND.window_features(window)
            assert np.max(np.abs(stream.window() - offline)) <= 1e-5
