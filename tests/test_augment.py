"""Waveform augmentation: every effect keeps length and dtype, changes the signal, and a seed
reproduces it; the default config augments exactly as before the new effects existed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pytest
from scipy import signal

from host_training import augment as aug
from host_training.augment import AugmentConfig, augment
from host_training.config import config_from_dict
from tests.conftest import speech_like

RATE = 16000
CLIP = speech_like(1.5, seed=3)
BANK = [speech_like(1.0 + 0.3 * i, seed=10 + i) for i in range(4)]

Effect = Callable[[np.ndarray, np.random.Generator], np.ndarray]
EFFECTS: dict[str, Effect] = {
    "white": lambda x, rng: aug.add_white_noise(x, rng, (10.0, 20.0)),
    "coloured": lambda x, rng: aug.add_coloured_noise(x, rng, (10.0, 20.0)),
    "babble": lambda x, rng: aug.add_babble(x, rng, BANK, (5.0, 10.0)),
    "shift": lambda x, rng: aug.time_shift(x, rng, 0.5),
    "pitch": lambda x, rng: aug.change_pitch(x, rng, 3.0),
    "gain": lambda x, rng: np.asarray(aug.random_gain(x, rng, 12.0), dtype=np.float32),
    "bandlimit": lambda x, rng: aug.band_limit(x, rng, (8000,)),
    "mulaw": lambda x, rng: aug.mulaw_roundtrip(x),
    "mp3": lambda x, rng: aug.codec_roundtrip(x, "mp3", 0.5),
    "vorbis": lambda x, rng: aug.codec_roundtrip(x, "vorbis", 0.5),
    "opus": lambda x, rng: aug.codec_roundtrip(x, "opus", 0.5),
    "rawboost_lnl": lambda x, rng: aug.rawboost_convolutive(x, rng),
    "rawboost_isd": lambda x, rng: aug.rawboost_impulsive(x, rng),
    "rawboost_ssi": lambda x, rng: aug.rawboost_stationary(x, rng),
    "reverb": lambda x, rng: aug.reverberate(x, rng, (0.3, 0.6), (0.0, 6.0)),
}
CODEC_EFFECTS = {"mp3", "vorbis", "opus"}


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_effect_keeps_shape_and_dtype_and_changes_signal(name: str) -> None:
    if name in CODEC_EFFECTS and not aug.codec_available(name):
        pytest.skip(f"libsndfile here cannot encode {name}")
    out = EFFECTS[name](CLIP, np.random.default_rng(0))
    assert out.shape == CLIP.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert not np.allclose(out, CLIP, atol=1e-4)


@pytest.mark.parametrize("name", sorted(set(EFFECTS) - CODEC_EFFECTS))
def test_effect_is_reproducible_from_seed(name: str) -> None:
    first = EFFECTS[name](CLIP, np.random.default_rng(7))
    again = EFFECTS[name](CLIP, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    if name not in ("mulaw", "bandlimit"):  # these two have nothing random at one rate
        assert not np.array_equal(first, EFFECTS[name](CLIP, np.random.default_rng(8)))


def _band_energy(audio: np.ndarray, low: float, high: float) -> float:
    freqs, power = signal.welch(audio, RATE, nperseg=1024)
    return float(power[(freqs >= low) & (freqs < high)].sum())


def test_bandlimit_removes_energy_above_4k() -> None:
    noise = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1
    out = aug.band_limit(noise, np.random.default_rng(0), (8000,))
    assert _band_energy(out, 4200, 8000) < 1e-3 * _band_energy(noise, 4200, 8000)
    assert _band_energy(out, 500, 3500) > 0.8 * _band_energy(noise, 500, 3500)


@pytest.mark.parametrize("seed", range(4))
def test_pitch_moves_a_tone_by_the_drawn_interval(seed: int) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    semitones = np.random.default_rng(seed).uniform(-3.0, 3.0)
    out = aug.change_pitch(tone, np.random.default_rng(seed), 3.0)
    peak_hz = np.argmax(np.abs(np.fft.rfft(out[: RATE // 2]))) * 2.0  # 2 Hz per bin
    assert peak_hz == pytest.approx(440 * 2 ** (semitones / 12), abs=3.0)


def test_coloured_noise_slope() -> None:
    rng = np.random.default_rng(0)
    brown = aug.coloured_noise(4 * RATE, 2.0, rng)
    assert _band_energy(brown, 50, 200) > 100 * _band_energy(brown, 4000, 6000)
    white = aug.coloured_noise(4 * RATE, 0.0, rng)
    ratio = _band_energy(white, 50, 200) / _band_energy(white, 4000, 6000)
    assert 0.03 < ratio < 0.15  # the bands' widths are 150 and 2000 Hz


def test_noise_snr_is_respected() -> None:
    rng = np.random.default_rng(0)
    out = aug.add_coloured_noise(CLIP, rng, (20.0, 20.0))
    noise = out - CLIP
    snr = 10 * np.log10(np.mean(CLIP.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert snr == pytest.approx(20.0, abs=0.1)


def test_mulaw_error_is_small_relative_to_level() -> None:
    out = aug.mulaw_roundtrip(CLIP)
    error = np.sqrt(np.mean((out - CLIP) ** 2)) / np.sqrt(np.mean(CLIP ** 2))
    assert 1e-3 < error < 0.1


def test_impulsive_noise_touches_a_fraction_of_samples() -> None:
    out = aug.rawboost_impulsive(CLIP, np.random.default_rng(3), max_percent=10.0)
    changed = np.mean(out != CLIP)
    assert 0.0 < changed <= 0.1


def test_notch_filter_peak_gain() -> None:
    taps = aug.notch_filter(aug.NotchBank(), np.random.default_rng(0), gain_range_db=(-6, -6))
    _, response = signal.freqz(taps, 1, worN=512, fs=RATE)
    assert np.max(np.abs(response)) == pytest.approx(10 ** (-6 / 20), rel=1e-6)


def _everything_on() -> AugmentConfig:
    probs = {f.name: 1.0 for f in fields(AugmentConfig) if f.name.endswith("_prob")}
    return AugmentConfig(**probs, noise_types=("white", "coloured", "babble"))


@pytest.mark.parametrize("rt60, drr_db", [(0.3, 0.0), (0.8, 10.0)])
def test_room_response_has_its_direct_to_reverberant_ratio_and_decay_time(
        rt60: float, drr_db: float) -> None:
    response = aug.room_impulse_response(np.random.default_rng(4), rt60, drr_db, RATE)
    assert response[0] == 1.0
    tail = response[1:]
    assert 10 * np.log10(1.0 / np.sum(tail ** 2)) == pytest.approx(drr_db, abs=0.01)
    # Schroeder's backward integral: the time from -5 to -25 dB, times 3, is the RT60.
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail ** 2))
    t5, t25 = np.argmax(decay < -5) / RATE, np.argmax(decay < -25) / RATE
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.2)


def test_reverberation_smears_a_click_and_keeps_the_level() -> None:
    click = np.zeros(RATE, dtype=np.float32)
    click[100] = 0.5
    wet = aug.reverberate(click, np.random.default_rng(2), (0.5, 0.5), (3.0, 3.0), RATE)
    assert aug.rms(wet) == pytest.approx(aug.rms(click), rel=1e-4)
    assert np.max(np.abs(wet[:100])) < 1e-6  # nothing before the direct sound
    late = np.sum(wet[100 + int(0.05 * RATE):] ** 2) / np.sum(wet ** 2)
    # A third of the energy is the tail (3 dB below the direct sound), and a tail decaying
    # 60 dB in 0.5 s keeps 10 ** (-6 * 0.05 / 0.5) of its energy after 50 ms.
    assert late == pytest.approx(10 ** (-0.6) / 3, rel=0.3)
    dry = CLIP.copy()
    aug.reverberate(dry, np.random.default_rng(0), (0.2, 0.8), (0.0, 12.0))
    np.testing.assert_array_equal(dry, CLIP)  # the input is not touched


def test_full_chain_is_reproducible_and_keeps_dtype() -> None:
    config = _everything_on()
    first = augment(CLIP, np.random.default_rng(5), config, noise_bank=BANK)
    again = augment(CLIP, np.random.default_rng(5), config, noise_bank=BANK)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and np.all(np.isfinite(first))
    assert np.max(np.abs(first)) <= 1.0


def test_babble_without_bank_falls_back_to_other_types() -> None:
    config = AugmentConfig(noise_prob=1.0, noise_types=("babble",), trim_prob=0, gain_prob=0)
    np.testing.assert_array_equal(augment(CLIP, np.random.default_rng(0), config), CLIP)
    noisy = augment(CLIP, np.random.default_rng(0), config, noise_bank=BANK)
    assert not np.allclose(noisy, CLIP)


def test_default_config_is_unchanged() -> None:
    """The effects that existed before keep their meaning and random stream."""
    config = AugmentConfig()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        expected = CLIP.astype(np.float32, copy=True)
        if rng.random() < config.trim_prob:
            expected = aug.trim_silence(expected, config.trim_threshold_db)
        if rng.random() < config.noise_prob:
            expected = aug.add_white_noise(expected, rng, config.noise_snr_db)
        if rng.random() < config.gain_prob:
            expected = aug.random_gain(expected, rng, config.gain_db)
        got = augment(CLIP, np.random.default_rng(seed), config, noise_bank=BANK)
        np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_config_from_toml_section() -> None:
    config = config_from_dict({"augment": {"codec_prob": 0.2, "codec_formats": ["vorbis"],
                                           "bandlimit_rates": [8000, 11025]}}).augment
    assert config.codec_formats == ("vorbis",) and config.bandlimit_rates == (8000, 11025)


@pytest.mark.parametrize("bad", [{"codec_prob": 1.5}, {"noise_types": ("pink",)},
                                 {"codec_formats": ("aac",)}, {"noise_snr_db": (30.0, 10.0)},
                                 {"freq_mask_width": 0}, {"time_mask_count": 0},
                                 {"reverb_rt60_seconds": (0.8, 0.2)},
                                 {"reverb_rt60_seconds": (0.0, 0.5)}, {"reverb_prob": -0.1}])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"):
        aug.codec_roundtrip(CLIP, "aac", 0.5)


def test_augmentation_runs_at_the_front_ends_rate_and_old_configs_still_load() -> None:
    assert "sample_rate" not in {f.name for f in fields(AugmentConfig)}
    old = {"frontend": {"sample_rate": 16000}, "augment": {"sample_rate": 16000}}
    assert config_from_dict(old).augment == AugmentConfig()
    with pytest.raises(ValueError, match="front end's rate"):
        config_from_dict({"augment": {"sample_rate": 22050}})


def test_masks_zero_whole_bands_and_frames_within_their_limits() -> None:
    features = np.random.default_rng(0).standard_normal((397, 128)).astype(np.float32) + 5.0
    config = AugmentConfig(freq_mask_prob=1.0, freq_mask_count=2, freq_mask_width=16,
                           time_mask_prob=1.0, time_mask_count=2, time_mask_width=40)
    masked_bands, masked_frames = [], []
    for seed in range(50):
        out = aug.mask_features(features, np.random.default_rng(seed), config)
        bands = int((out == 0).all(axis=0).sum())
        frames = int((out == 0).all(axis=1).sum())
        assert 1 <= bands <= 32 and 1 <= frames <= 80
        # every value is either the input's or a mask's zero
        assert np.all((out == features) | (out == 0))
        masked_bands.append(bands)
        masked_frames.append(frames)
    assert max(masked_bands) > 16 and max(masked_frames) > 40  # two masks do happen
    assert (features != 0).all()


def test_eq_curve_is_smooth_zero_mean_and_within_its_peak() -> None:
    peaks = []
    for seed in range(200):
        curve = aug.eq_curve(128, np.random.default_rng(seed), 6.0)
        assert curve.shape == (128,) and curve.dtype == np.float32
        assert abs(float(curve.mean())) < 1e-3  # a gain change would be normalised away
        assert float(np.max(np.abs(curve))) <= 6.0 + 1e-4
        # at most four half-periods: neighbouring bands differ by a small step
        assert float(np.max(np.abs(np.diff(curve)))) < 6.0 * np.pi * 4 / 128 * 1.5
        peaks.append(float(np.max(np.abs(curve))))
    assert max(peaks) > 5.0 and min(peaks) < 1.0  # the peak is drawn over the whole range
    assert not np.any(aug.eq_curve(128, np.random.default_rng(0), 0.0))


def test_spectral_eq_adds_one_curve_to_every_frame_before_the_masks() -> None:
    features = np.random.default_rng(0).standard_normal((397, 128)).astype(np.float32)
    config = AugmentConfig(spectral_eq_prob=1.0, spectral_eq_db=8.0)
    out = aug.mask_features(features, np.random.default_rng(3), config)
    change = out - features
    assert float(np.max(np.abs(change))) > 0.5
    np.testing.assert_allclose(change, np.broadcast_to(change[0], change.shape), atol=1e-5)
    assert (features == np.random.default_rng(0).standard_normal((397, 128))
            .astype(np.float32)).all()  # the input is not changed in place
    with pytest.raises(ValueError, match="spectral_eq_db"):
        AugmentConfig(spectral_eq_db=-1.0)


def test_masks_off_by_default_leave_features_and_random_stream_alone() -> None:
    features = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    rng = np.random.default_rng(1)
    out = aug.mask_features(features, rng, AugmentConfig())
    np.testing.assert_array_equal(out, features)
    assert rng.random() == np.random.default_rng(1).random()


def test_mixup_blends_windows_targets_and_weights_with_the_same_share() -> None:
    rows = 64
    features = np.stack([np.full((5, 3), float(i), dtype=np.float32) for i in range(rows)])
    targets = (np.arange(rows) % 2).astype(np.float32)
    weights = np.linspace(0.5, 1.5, rows).astype(np.float32)
    config = AugmentConfig(mixup_prob=0.5, mixup_alpha=0.4)
    mixed, new_targets, new_weights = aug.mixup_batch(features.copy(), targets, weights,
                                                      np.random.default_rng(0), config)
    changed = np.flatnonzero(~(mixed == features).all(axis=(1, 2)))
    assert 10 < len(changed) < 54  # about half the windows
    for row in changed:
        value = float(mixed[row, 0, 0])  # lam * row + (1 - lam) * partner, all entries alike
        assert (mixed[row] == value).all()
        # some partner (at share 1 - lam <= 0.5) explains the features, target and weight alike
        explained = []
        for partner in np.delete(np.arange(rows), row):
            share = (value - row) / (partner - row)
            if (0 < share <= 0.5 + 1e-6
                    and np.isclose(new_targets[row], (1 - share) * targets[row]
                                   + share * targets[partner], atol=1e-5)
                    and np.isclose(new_weights[row], (1 - share) * weights[row]
                                   + share * weights[partner], atol=1e-5)):
                explained.append(partner)
        assert explained, row
    untouched = np.setdiff1d(np.arange(rows), changed)
    np.testing.assert_array_equal(new_targets[untouched], targets[untouched])
    assert ((new_targets > 0) & (new_targets < 1)).any()  # bona fide met spoof somewhere
    assert targets.tolist() == (np.arange(rows) % 2).tolist()  # the caller's arrays stay


def test_mixup_off_by_default_changes_nothing() -> None:
    features = np.arange(24.0, dtype=np.float32).reshape(4, 2, 3)
    targets = np.array([0, 1, 0, 1], dtype=np.float32)
    rng = np.random.default_rng(0)
    out, new_targets, _ = aug.mixup_batch(features.copy(), targets, np.ones(4, np.float32),
                                          rng, AugmentConfig())
    np.testing.assert_array_equal(out, features)
    np.testing.assert_array_equal(new_targets, targets)
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn


def test_mixup_alpha_must_be_positive() -> None:
    with pytest.raises(ValueError, match="mixup_alpha"):
        AugmentConfig(mixup_alpha=0.0)
