"""Training a vocoder on bona fide clips and saving it (weights + config.json, atomically)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output, write_text_atomically
from host_training.vocoders.config import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    VocoderConfig,
    VocoderError,
    peak_normalise,
)
from host_training.vocoders.networks import build_generator, log_mel, mel_filterbank, stft_loss
from host_training.vocoders.pitch import estimate_f0, excitation


@dataclass
class TrainingData:
    """Peak-normalised clips (each padded to whole hops) and, for nsf, their frame F0."""

    waves: list[np.ndarray]
    f0: list[np.ndarray] = field(default_factory=list)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))


def prepare_training_data(waves: Sequence[np.ndarray], config: VocoderConfig,
                          progress: bool = False) -> TrainingData:
    kept = [w for w in waves if len(w) >= config.hop and np.max(np.abs(w)) > 0]
    if not kept:
        raise VocoderError("no usable training audio (every clip is empty or silent)")
    clips = []
    for wave in kept:
        padded = np.zeros(math.ceil(len(wave) / config.hop) * config.hop, np.float32)
        padded[:len(wave)] = peak_normalise(wave)
        clips.append(padded)
    f0 = []
    if config.family == "nsf":
        iterator = clips
        if progress:
            from tqdm import tqdm

            iterator = tqdm(clips, desc="F0", unit="clip", leave=False)
        f0 = [estimate_f0(c, config.sample_rate, config.hop) for c in iterator]
    # Draw clips in proportion to length (at least one segment each): every second of speech
    # is equally likely, but the many short FSDD/KLettres clips are not ignored.
    lengths = np.array([max(len(c), config.segment_samples) for c in clips], np.float64)
    return TrainingData(clips, f0, lengths / lengths.sum())


def sample_batch(data: TrainingData, config: VocoderConfig, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Random hop-aligned segments (batch, segment) and, for nsf, their excitation."""
    segment = config.segment_samples
    frames = segment // config.hop
    audio = np.zeros((config.batch_size, segment), np.float32)
    source = (np.zeros((config.batch_size, segment, config.harmonics + 1), np.float32)
              if config.family == "nsf" else None)
    for b, index in enumerate(rng.choice(len(data.waves), config.batch_size, p=data.weights)):
        clip = data.waves[index]
        clip_frames = len(clip) // config.hop
        start = int(rng.integers(0, max(clip_frames - frames, 0) + 1))
        piece = clip[start * config.hop:(start + frames) * config.hop]
        audio[b, :len(piece)] = piece
        if source is not None:
            f0 = np.zeros(frames, np.float32)
            track = data.f0[index][start:start + frames]
            f0[:len(track)] = track
            source[b] = excitation(f0, config.hop, config.sample_rate, config.harmonics, rng)
    return audio, source


def count_params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def save_vocoder(model, config: VocoderConfig, folder: Path,
                 summary: dict[str, object] | None = None) -> None:
    """Weights and config.json, each replaced atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / WEIGHTS_FILE) as temporary:
        model.save_weights(temporary)
    payload = {"config": config.to_dict(), "params": count_params(model),
               "training": summary or {}}
    write_text_atomically(folder / CONFIG_FILE, json.dumps(payload, indent=2) + "\n")


@dataclass
class TrainingSummary:
    steps: int
    minutes: float
    params: int
    first_loss: float
    final_loss: float
    final_stft_loss: float
    final_mel_l1: float
    history: list[dict[str, float]]


def train_vocoder(config: VocoderConfig, waves: Sequence[np.ndarray], out_dir: Path,
                  minutes: float = 8.0, max_steps: int | None = None, seed: int = 0,
                  log_every: int = 50, checkpoint_minutes: float = 2.0,
                  log: Callable[[str], None] | None = None) -> TrainingSummary:
    """Train for ``minutes`` of wall time (or ``max_steps``) on random segments of ``waves``
    (float32 at ``config.sample_rate``); saves weights + config.json to ``out_dir`` every
    ``checkpoint_minutes`` and at the end."""
    import tensorflow as tf

    if log is None:
        # Flushed, so a log file shows progress while the run is going, not at its end.
        def log(line: str) -> None:
            print(line, flush=True)

    # The budget covers preparation (F0 of every clip for nsf) and graph building too, so
    # ``minutes`` bounds the run's wall time on a shared machine.
    started = time.monotonic()
    deadline = started + minutes * 60.0
    config.validate()
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = prepare_training_data(waves, config, progress=True)
    model = build_generator(config)
    params = count_params(model)
    log(f"{config.family}: {params:,} parameters, hop {config.hop}, "
        f"{len(data.waves)} clips, {sum(len(w) for w in data.waves) / config.sample_rate / 60:.1f}"
        f" min of audio, batch {config.batch_size} x {config.segment_seconds:g} s")
    optimizer = tf.keras.optimizers.Adam(config.learning_rate, beta_1=0.8, beta_2=0.99,
                                         clipnorm=10.0)
    mel_matrix = mel_filterbank(config)
    is_nsf = config.family == "nsf"

    @tf.function(reduce_retracing=True)
    def step(audio, source):
        mel = log_mel(audio, config, mel_matrix)
        with tf.GradientTape() as tape:
            output = model([mel, source] if is_nsf else mel, training=True)[..., 0]
            spectral = stft_loss(audio, output, config.stft_resolutions)
            mel_l1 = tf.reduce_mean(tf.abs(log_mel(output, config, mel_matrix) - mel))
            loss = spectral + config.mel_weight * mel_l1
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss, spectral, mel_l1

    dummy_source = tf.zeros((config.batch_size, 1, 1))
    last_checkpoint = time.monotonic()
    history: list[dict[str, float]] = []
    window: list[tuple[float, float, float]] = []
    first_loss = math.nan
    steps = 0
    while time.monotonic() < deadline and (max_steps is None or steps < max_steps):
        audio, source = sample_batch(data, config, rng)
        loss, spectral, mel_l1 = step(tf.constant(audio),
                                      tf.constant(source) if is_nsf else dummy_source)
        values = (float(loss), float(spectral), float(mel_l1))
        if not all(math.isfinite(v) for v in values):
            raise VocoderError(f"training diverged at step {steps + 1} (loss {values[0]}); "
                               "lower learning_rate")
        steps += 1
        if steps == 1:
            first_loss = values[0]
        window.append(values)
        if steps % log_every == 0 or steps == max_steps:
            mean = np.mean(window, axis=0)
            elapsed = time.monotonic() - started
            history.append({"step": steps, "seconds": round(elapsed, 1), "loss": float(mean[0]),
                            "stft": float(mean[1]), "mel_l1": float(mean[2])})
            log(f"step {steps:5d}  {elapsed / 60:5.1f} min  loss {mean[0]:.4f}  "
                f"stft {mean[1]:.4f}  mel L1 {mean[2]:.4f}  {steps / elapsed:.2f} steps/s")
            window = []
        if time.monotonic() - last_checkpoint > checkpoint_minutes * 60:
            save_vocoder(model, config, out_dir, {"steps": steps, "partial": True})
            last_checkpoint = time.monotonic()
    if window:
        mean = np.mean(window, axis=0)
        history.append({"step": steps, "seconds": round(time.monotonic() - started, 1),
                        "loss": float(mean[0]), "stft": float(mean[1]),
                        "mel_l1": float(mean[2])})
    if not history:
        raise VocoderError("no training step finished; give more --minutes")
    last = history[-1]
    summary = TrainingSummary(steps, (time.monotonic() - started) / 60, params, first_loss,
                              last["loss"], last["stft"], last["mel_l1"], history)
    save_vocoder(model, config, out_dir, {
        "steps": steps, "minutes": round(summary.minutes, 2), "seed": seed,
        "clips": len(data.waves), "first_loss": first_loss, "final_loss": last["loss"],
        "final_stft_loss": last["stft"], "final_mel_l1": last["mel_l1"], "history": history})
    return summary
