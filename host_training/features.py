"""Feature windows for training and evaluation, computed with the board's own front end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_runtime.audio import fit_to_window, split_windows
from edge_runtime.frontend import Frontend
from host_training.augment import AugmentConfig, augment, mask_features


def random_window(audio: np.ndarray, window_samples: int, rng: np.random.Generator,
                  short_crop_samples: tuple[int, int] | None = None) -> np.ndarray:
    """A random crop of a long clip, or a repeat-padded short clip; with
    ``short_crop_samples``, first a random segment of that length range (then repeat-padded)."""
    if short_crop_samples is not None:
        length = int(rng.integers(short_crop_samples[0], short_crop_samples[1] + 1))
        if audio.shape[0] > length:
            start = int(rng.integers(0, audio.shape[0] - length + 1))
            audio = audio[start : start + length]
    if audio.shape[0] > window_samples:
        start = int(rng.integers(0, audio.shape[0] - window_samples + 1))
        return audio[start : start + window_samples]
    return fit_to_window(audio, window_samples)


def training_window(wave: np.ndarray, frontend: Frontend, rng: np.random.Generator,
                    augment_config: AugmentConfig | None,
                    noise_bank: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """One augmented random window of a clip: (frames, bands) float32."""
    rate = frontend.config.sample_rate
    short = None
    audio = wave
    if augment_config is not None:
        audio = augment(wave, rng, augment_config, noise_bank, rate)
        if augment_config.short_crop_prob > 0 and rng.random() < augment_config.short_crop_prob:
            low, high = augment_config.short_crop_seconds
            short = (int(low * rate), int(high * rate))
    features = frontend.window_features(
        random_window(audio, frontend.config.window_samples, rng, short))
    if augment_config is not None:
        features = mask_features(features, rng, augment_config)
    return features


def clip_windows(waves: list[np.ndarray], frontend: Frontend,
                 hop_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """All scoring windows of every clip, as the board cuts them, and each window's clip index."""
    window = frontend.config.window_samples
    hop = max(1, int(window * hop_fraction))
    features, owners = [], []
    for index, wave in enumerate(waves):
        for chunk in split_windows(wave, window, hop):
            features.append(frontend.window_features(chunk))
            owners.append(index)
    return np.stack(features), np.asarray(owners)


def clip_scores(window_scores: np.ndarray, owners: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean window score per clip (the board's clip score)."""
    sums = np.bincount(owners, weights=window_scores, minlength=n_clips)
    counts = np.bincount(owners, minlength=n_clips)
    return sums / np.maximum(counts, 1)


def keras_window_scores(keras_model, features: np.ndarray) -> np.ndarray:
    """Float spoof probability of each (frames, bands) window, from the Keras model."""
    return keras_model.predict(features[..., None], batch_size=64, verbose=0)[:, 0]


def keras_clip_scores(keras_model, waves: list[np.ndarray], frontend: Frontend) -> np.ndarray:
    """Float clip scores of the Keras model on the windows the board scores."""
    features, owners = clip_windows(waves, frontend)
    return clip_scores(keras_window_scores(keras_model, features), owners, len(waves))
