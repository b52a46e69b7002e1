"""Small neural vocoders trained on our own bona fide speech, to make "vocoded twins".

A twin is a bona fide clip re-synthesised from its log-mel by a neural vocoder: same speaker,
same words, same prosody, only the waveform generator differs. Training a detector on such
pairs teaches it the generator's traces instead of content, level or channel cues.

Families (``VocoderConfig.family``):

- ``hifigan``: conv pre-net, transposed-conv upsampling, multi-receptive-field residual blocks
  (HiFi-GAN V3-like, "ResBlock2").
- ``melgan``: the same upsampler, but each stage followed by one dilated residual stack (1, 3, 9)
  instead of the MRF (MelGAN).
- ``nsf``: neural source-filter. A sine-harmonic + noise excitation built in NumPy from a YIN F0
  estimate is shaped by a non-causal dilated conv filter conditioned on the upsampled mel.

Each vocoder analyses audio with its own log-mel (``log_mel``), independent of the detector's
front end. Training uses a multi-resolution STFT loss (spectral convergence + log magnitude) and
a mel L1, no discriminator: a few CPU minutes already give speech-like twins.

Command line (host side, needs the ``train`` extra)::

    python -m host_training.neural_vocoder train --family hifigan --minutes 8 \\
        --out cache/vocoders/hifigan
    python -m host_training.neural_vocoder vocode --vocoder cache/vocoders/hifigan \\
        --data /work/shared/data/spoofmix --split train --out cache/twins_hifigan
    python -m host_training.neural_vocoder quality --vocoder cache/vocoders/hifigan --split dev

Exit codes: 0 success, 2 usage or input error (bad folder, corpus, option).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output, write_text_atomically
from edge_runtime.audio import rms

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FAMILIES = ("hifigan", "melgan", "nsf")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.weights.h5"
# Inputs are scaled to this peak before analysis (as HiFi-GAN's training data is), so a vocoder
# trained for minutes does not also have to learn every recording level; the output is
# RMS-matched back to the source afterwards.
PEAK = 0.95
LOG_FLOOR = 1e-5
# YIN search range and thresholds: covers low male to high child voices.
F0_MIN = 60.0
F0_MAX = 500.0
YIN_THRESHOLD = 0.15
YIN_FRAME = 1024
# Frames quieter than this (RMS relative to the clip's loudest frame) are unvoiced.
VOICING_FLOOR_DB = -40.0
# ... and frames under -80 dBFS are silence whatever the clip's level (digital zero has a
# perfectly "periodic" difference function).
SILENCE_RMS = 1e-4


class VocoderError(ValueError):
    """A vocoder folder, config or option that cannot be used; one line for a person."""


@dataclass(frozen=True)
class VocoderConfig:
    family: str = "hifigan"
    sample_rate: int = 16000
    n_fft: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    # Upsampling: the product of the rates is the hop of the vocoder's own mel.
    upsample_rates: tuple[int, ...] = (8, 5, 4)
    upsample_kernels: tuple[int, ...] = (16, 10, 8)
    channels: int = 128
    pre_kernel: int = 7
    # hifigan: one residual block per kernel, each with its own dilations (the MRF).
    resblock_kernels: tuple[int, ...] = (3, 5, 7)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 2), (2, 6), (3, 12))
    # melgan: one residual stack with these dilations after each upsampling stage.
    stack_dilations: tuple[int, ...] = (1, 3, 9)
    # nsf: harmonics in the excitation, filter width, dilated blocks.
    harmonics: int = 8
    filter_channels: int = 32
    filter_blocks: int = 2
    filter_dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    # training
    segment_seconds: float = 0.5
    batch_size: int = 8
    learning_rate: float = 1e-3
    mel_weight: float = 1.0
    # (fft_length, frame_step, frame_length) of the multi-resolution STFT loss
    stft_resolutions: tuple[tuple[int, int, int], ...] = (
        (512, 50, 240), (1024, 120, 600), (2048, 240, 1200))

    @property
    def hop(self) -> int:
        return int(np.prod(self.upsample_rates))

    @property
    def segment_samples(self) -> int:
        frames = max(1, round(self.segment_seconds * self.sample_rate / self.hop))
        return frames * self.hop

    def validate(self) -> VocoderConfig:
        if self.family not in FAMILIES:
            raise VocoderError(f"unknown vocoder family {self.family!r}; "
                               f"choose one of {', '.join(FAMILIES)}")
        if len(self.upsample_rates) != len(self.upsample_kernels):
            raise VocoderError("upsample_rates and upsample_kernels differ in length")
        if len(self.resblock_kernels) != len(self.resblock_dilations):
            raise VocoderError("resblock_kernels and resblock_dilations differ in length")
        if self.channels < 2 ** len(self.upsample_rates):
            raise VocoderError("channels must be at least 2**(number of upsampling stages)")
        if self.n_fft < self.hop or (self.n_fft - self.hop) % 2:
            raise VocoderError("n_fft must be >= hop and n_fft - hop even (centred frames)")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise VocoderError("need 0 <= fmin < fmax <= sample_rate / 2")
        return self

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> VocoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VocoderError(f"unknown vocoder config field(s): {', '.join(unknown)}")

        def tuples(value: object) -> object:
            return tuple(tuples(v) for v in value) if isinstance(value, list) else value

        return cls(**{k: tuples(v) for k, v in data.items()}).validate()


def family_config(family: str) -> VocoderConfig:
    """The default (corpus-sized, ~0.3-0.5 M parameter) configuration of a family."""
    return VocoderConfig(family=family).validate()


# --------------------------------------------------------------------------- F0 and excitation


def _frames(audio: np.ndarray, hop: int, frame: int) -> np.ndarray:
    """Frames centred like the vocoder's mel: frame i covers samples around [i*hop, (i+1)*hop)."""
    count = max(1, math.ceil(len(audio) / hop))
    pad = (frame - hop) // 2
    padded = np.zeros(count * hop + frame - hop, np.float32)
    padded[pad:pad + len(audio)] = audio
    view = np.lib.stride_tricks.sliding_window_view(padded, frame)
    return view[::hop][:count]


def estimate_f0(audio: np.ndarray, sample_rate: int, hop: int,
                fmin: float = F0_MIN, fmax: float = F0_MAX) -> np.ndarray:
    """Frame-wise F0 in Hz (0 = unvoiced), one value per ``hop`` samples (YIN, vectorised).

    The cumulative-mean-normalised difference function is computed from an FFT
    autocorrelation; the first dip under YIN_THRESHOLD in [fmin, fmax], refined by parabolic
    interpolation, is the period. Quiet frames are unvoiced; a 3-frame median removes
    isolated octave slips.
    """
    frames = _frames(np.asarray(audio, np.float32), hop, YIN_FRAME).astype(np.float64)
    width = YIN_FRAME
    max_lag = min(int(sample_rate / fmin) + 2, width // 2)
    min_lag = max(2, int(sample_rate / fmax))
    spectrum = np.fft.rfft(frames, 2 * width, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :max_lag + 1]
    energy = np.cumsum(np.concatenate([np.zeros((len(frames), 1)), frames ** 2], axis=1), axis=1)
    lags = np.arange(max_lag + 1)
    # d(tau) = sum_{j < W - tau} (x_j - x_{j+tau})^2 = head energy + tail energy - 2 r(tau)
    head = energy[:, width - lags]
    tail = energy[:, width:width + 1] - energy[:, lags]
    diff = np.maximum(head + tail - 2.0 * acf, 0.0)
    diff[:, 0] = 0.0
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-12)

    search = cmnd[:, min_lag:max_lag]
    below = search < YIN_THRESHOLD
    # Walk from the first lag under the threshold down to the bottom of that dip.
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    f0 = np.zeros(len(frames))
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    loud = ((20 * np.log10(np.maximum(rms, 1e-9) / max(rms.max(), 1e-9)) > VOICING_FLOOR_DB)
            & (rms > SILENCE_RMS))
    for i in np.nonzero((first >= 0) & loud)[0]:
        lag = first[i]
        row = search[i]
        while lag + 1 < len(row) and row[lag + 1] < row[lag]:
            lag += 1
        shift = 0.0
        if 0 < lag < len(row) - 1:
            a, b, c = row[lag - 1], row[lag], row[lag + 1]
            denominator = a - 2 * b + c
            if denominator > 0:
                shift = 0.5 * (a - c) / denominator
        f0[i] = sample_rate / (lag + min_lag + shift)
    if len(f0) >= 3:
        from scipy.signal import medfilt

        smoothed = medfilt(f0, 3)
        f0 = np.where(f0 > 0, smoothed, 0.0)
        f0[(f0 > 0) & (f0 < fmin * 0.9)] = 0.0
    return f0.astype(np.float32)


def excitation(f0: np.ndarray, hop: int, sample_rate: int, harmonics: int,
               rng: np.random.Generator) -> np.ndarray:
    """NSF source signal, (frames * hop, harmonics + 1): sines at k * F0 in voiced frames
    (amplitude 0.1, random start phase, none above Nyquist) and a noise channel that is loud
    where the frame is unvoiced (0.033) and faint where it is voiced (0.003)."""
    samples = len(f0) * hop
    centres = np.arange(len(f0)) * hop + (hop - 1) / 2
    position = np.arange(samples)
    voiced = np.repeat(f0 > 0, hop)
    # Interpolate only between voiced frames so the pitch does not glide down to 0 Hz.
    if (f0 > 0).any():
        voiced_idx = np.nonzero(f0 > 0)[0]
        track = np.interp(position, centres[voiced_idx], f0[voiced_idx])
    else:
        track = np.zeros(samples)
    track = np.where(voiced, track, 0.0)
    phase = 2 * np.pi * np.cumsum(track / sample_rate) + rng.uniform(0, 2 * np.pi)
    out = np.empty((samples, harmonics + 1), np.float32)
    k = np.arange(1, harmonics + 1)
    out[:, :harmonics] = 0.1 * np.sin(phase[:, None] * k) * (track[:, None] * k
                                                              < sample_rate / 2)
    out[:, :harmonics] *= voiced[:, None]
    out[:, harmonics] = rng.standard_normal(samples) * np.where(voiced, 0.003, 0.033)
    return out


# --------------------------------------------------------------------------- analysis (TF)


def _mel_matrix(config: VocoderConfig):
    import tensorflow as tf

    return tf.signal.linear_to_mel_weight_matrix(
        config.n_mels, config.n_fft // 2 + 1, config.sample_rate, config.fmin, config.fmax)


def log_mel(audio, config: VocoderConfig, mel_matrix=None):
    """(batch, samples) -> (batch, samples // hop, n_mels) natural-log mel magnitude.

    Frames are centred (reflect padding of (n_fft - hop) / 2 each side), so frame i lines up
    with output samples [i*hop, (i+1)*hop) of the generator.
    """
    import tensorflow as tf

    pad = (config.n_fft - config.hop) // 2
    padded = tf.pad(audio, [[0, 0], [pad, pad]], mode="REFLECT")
    spectrum = tf.abs(tf.signal.stft(padded, config.n_fft, config.hop, config.n_fft,
                                     window_fn=tf.signal.hann_window, pad_end=False))
    matrix = _mel_matrix(config) if mel_matrix is None else mel_matrix
    return tf.math.log(tf.maximum(tf.matmul(spectrum, matrix), LOG_FLOOR))


def stft_loss(target, output, resolutions: Sequence[tuple[int, int, int]]):
    """Multi-resolution STFT loss: mean over resolutions of spectral convergence + L1 of log
    magnitudes (Yamamoto et al., Parallel WaveGAN)."""
    import tensorflow as tf

    total = 0.0
    for fft_length, step, length in resolutions:
        def magnitude(x, fft_length=fft_length, step=step, length=length):
            return tf.sqrt(tf.maximum(tf.abs(tf.signal.stft(
                x, length, step, fft_length, window_fn=tf.signal.hann_window)) ** 2, 1e-7))

        s_true, s_pred = magnitude(target), magnitude(output)
        # Over the whole batch, not per segment: a near-silent segment would otherwise
        # divide by almost nothing and dominate the gradient.
        convergence = tf.norm(s_true - s_pred) / tf.maximum(tf.norm(s_true), 1e-7)
        log_magnitude = tf.reduce_mean(tf.abs(tf.math.log(s_true) - tf.math.log(s_pred)))
        total += convergence + log_magnitude
    return total / len(resolutions)


# --------------------------------------------------------------------------- generators


def _upsampler(x, config: VocoderConfig, stage: Callable | None, final_channels: int | None = None):
    from tensorflow import keras

    layers = keras.layers
    channels = config.channels
    for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernels,
                                           strict=True)):
        channels = config.channels // 2 ** (i + 1)
        if final_channels is not None and i == len(config.upsample_rates) - 1:
            channels = final_channels
        x = layers.LeakyReLU(0.1)(x)
        x = layers.Conv1DTranspose(channels, kernel, strides=rate, padding="same",
                                   name=f"up{i}")(x)
        if stage is not None:
            x = stage(x, channels, i)
    return x


def _mrf(config: VocoderConfig):
    """HiFi-GAN multi-receptive-field fusion: the mean of residual blocks of different kernel
    sizes and dilations."""
    from tensorflow import keras

    layers = keras.layers

    def stage(x, channels: int, index: int):
        branches = []
        for j, (kernel, dilations) in enumerate(zip(config.resblock_kernels,
                                                    config.resblock_dilations, strict=True)):
            h = x
            for m, dilation in enumerate(dilations):
                t = layers.LeakyReLU(0.1)(h)
                t = layers.Conv1D(channels, kernel, dilation_rate=dilation, padding="same",
                                  name=f"mrf{index}_{j}_{m}")(t)
                h = layers.Add()([h, t])
            branches.append(h)
        merged = branches[0] if len(branches) == 1 else layers.Average()(branches)
        return merged

    return stage


def _residual_stack(config: VocoderConfig):
    """MelGAN residual stack: dilated 3-tap conv + 1x1 conv per unit, with a skip."""
    from tensorflow import keras

    layers = keras.layers

    def stage(x, channels: int, index: int):
        for m, dilation in enumerate(config.stack_dilations):
            t = layers.LeakyReLU(0.2)(x)
            t = layers.Conv1D(channels, 3, dilation_rate=dilation, padding="same",
                              name=f"stack{index}_{m}a")(t)
            t = layers.LeakyReLU(0.2)(t)
            t = layers.Conv1D(channels, 1, name=f"stack{index}_{m}b")(t)
            x = layers.Add()([x, t])
        return x

    return stage


def build_generator(config: VocoderConfig):
    """The Keras generator: inputs log-mel (B, T, n_mels) [and, for nsf, the excitation
    (B, T*hop, harmonics+1)], output waveform (B, T*hop, 1) in [-1, 1]."""
    from tensorflow import keras

    layers = keras.layers
    config.validate()
    mel = keras.Input((None, config.n_mels), name="mel")
    x = layers.Conv1D(config.channels, config.pre_kernel, padding="same", name="pre")(mel)
    if config.family in ("hifigan", "melgan"):
        stage = _mrf(config) if config.family == "hifigan" else _residual_stack(config)
        x = _upsampler(x, config, stage)
        x = layers.LeakyReLU(0.01)(x)
        x = layers.Conv1D(1, 7, padding="same", name="post")(x)
        wave = layers.Activation("tanh", name="wave")(x)
        return keras.Model(mel, wave, name=f"{config.family}_generator")

    # nsf: the mel only conditions the filter; the harmonics come from the excitation.
    source_in = keras.Input((None, config.harmonics + 1), name="excitation")
    condition = _upsampler(x, config, None, final_channels=config.filter_channels)
    source = layers.Conv1D(1, 1, name="merge_source")(source_in)
    source = layers.Activation("tanh")(source)
    h = layers.Conv1D(config.filter_channels, 1, name="filter_in")(source)
    for b in range(config.filter_blocks):
        h = layers.Add()([h, layers.Conv1D(config.filter_channels, 1,
                                           name=f"cond{b}")(condition)])
        for m, dilation in enumerate(config.filter_dilations):
            t = layers.LeakyReLU(0.1)(h)
            t = layers.Conv1D(config.filter_channels, 3, dilation_rate=dilation,
                              padding="same", name=f"filter{b}_{m}")(t)
            h = layers.Add()([h, t])
    h = layers.LeakyReLU(0.01)(h)
    h = layers.Conv1D(1, 7, padding="same", name="post")(h)
    # The source enters the output directly too, so the filter only has to learn a correction.
    h = layers.Add()([h, source])
    wave = layers.Activation("tanh", name="wave")(h)
    return keras.Model([mel, source_in], wave, name="nsf_generator")


# --------------------------------------------------------------------------- training


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (PEAK / peak)).astype(np.float32) if peak > 0 else audio.astype(np.float32)


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
    mel_matrix = _mel_matrix(config)
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


# --------------------------------------------------------------------------- inference


class Vocoder:
    """A trained generator with its config; ``synthesise`` runs one padded batch."""

    def __init__(self, model, config: VocoderConfig, folder: Path | None = None) -> None:
        import tensorflow as tf

        self.model = model
        self.config = config
        self.folder = folder
        mel_matrix = _mel_matrix(config)
        is_nsf = config.family == "nsf"
        signature = [tf.TensorSpec((None, None), tf.float32),
                     tf.TensorSpec((None, None, config.harmonics + 1 if is_nsf else 1),
                                   tf.float32)]

        # One graph for every batch shape: retracing per clip length would cost more than
        # the synthesis itself.
        @tf.function(input_signature=signature)
        def run(audio, source):
            mel = log_mel(audio, config, mel_matrix)
            return model([mel, source] if is_nsf else mel, training=False)[..., 0]

        self._run = run

    def synthesise(self, audio: np.ndarray, source: np.ndarray | None) -> np.ndarray:
        """(batch, samples) peak-normalised, hop-multiple audio -> (batch, samples) output."""
        if source is None:
            source = np.zeros((len(audio), 1, 1), np.float32)
        return self._run(audio, source).numpy()


def load_vocoder(folder: Path | str) -> Vocoder:
    """A vocoder saved by ``train_vocoder``; VocoderError if the folder is not one."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not folder.is_dir():
        raise VocoderError(f"{folder}: no such vocoder folder")
    if not config_path.is_file() or not weights_path.is_file():
        raise VocoderError(f"{folder}: not a vocoder folder (needs {CONFIG_FILE} and "
                           f"{WEIGHTS_FILE}; train one with `train --out {folder}`)")
    try:
        payload = json.loads(config_path.read_text())
        config = VocoderConfig.from_dict(payload["config"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VocoderError(f"{config_path}: unreadable vocoder config ({error})") from None
    model = build_generator(config)
    try:
        model.load_weights(weights_path)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "corrupt"
        raise VocoderError(f"{weights_path}: weights do not fit the config ({first})") from None
    return Vocoder(model, config, folder)



def resynthesize_many(waves: Sequence[np.ndarray], rate: int, vocoder: Vocoder,
                      batch_seconds: float = 24.0, seed: int = 0,
                      progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Twins of many clips: sorted by length and synthesised in padded batches of at most
    ``batch_seconds`` of audio. Each twin is float32, as long as its source, RMS-matched to it.
    ``progress(n)`` is called after each batch with the number of clips it finished."""
    from edge_runtime.audio import resample

    config = vocoder.config
    rng = np.random.default_rng(seed)
    prepared = []
    for wave in waves:
        wave = np.asarray(wave, np.float32)
        if wave.ndim != 1:
            raise VocoderError(f"expected mono audio (1-D), got shape {wave.shape}")
        if rate != config.sample_rate:
            wave = resample(wave, rate, config.sample_rate)
        prepared.append(wave)
    # Reflect padding in the mel needs more than (n_fft - hop) / 2 samples.
    minimum = config.n_fft
    order = np.argsort([len(w) for w in prepared], kind="stable")
    budget = max(int(batch_seconds * config.sample_rate), minimum)
    outputs: list[np.ndarray | None] = [None] * len(prepared)
    position = 0

    def padded(index: int) -> int:
        return math.ceil(max(len(prepared[index]), minimum) / config.hop) * config.hop

    while position < len(order):
        # Clips are sorted by length, so the clip just added is always the batch's longest.
        end = position + 1
        while end < len(order) and (end + 1 - position) * padded(order[end]) <= budget:
            end += 1
        members = order[position:end]
        padded_len = padded(members[-1])
        audio = np.zeros((len(members), padded_len), np.float32)
        source = None
        for row, index in enumerate(members):
            wave = prepared[index]
            audio[row, :len(wave)] = peak_normalise(wave)
        if config.family == "nsf":
            source = np.stack([
                excitation(estimate_f0(row, config.sample_rate, config.hop), config.hop,
                           config.sample_rate, config.harmonics, rng) for row in audio])
        synthesised = vocoder.synthesise(audio, source)
        for row, index in enumerate(members):
            source_wave = prepared[index]
            twin = synthesised[row, :len(source_wave)].astype(np.float64)
            target, current = rms(source_wave), rms(twin)
            twin = twin * (target / current) if current > 0 else twin
            if rate != config.sample_rate:
                twin = resample(twin.astype(np.float32), config.sample_rate, rate)
                length = len(waves[index])
                twin = np.pad(twin, (0, max(0, length - len(twin))))[:length]
                current = rms(twin)
                twin = twin * (rms(waves[index]) / current) if current > 0 else twin
            outputs[index] = np.asarray(twin, np.float32)
        position += len(members)
        if progress is not None:
            progress(len(members))
    return [o for o in outputs if o is not None]


def resynthesize(audio: np.ndarray, rate: int, vocoder: Vocoder) -> np.ndarray:
    """The vocoded twin of one clip: float32, same length and RMS as ``audio``."""
    return resynthesize_many([audio], rate, vocoder)[0]


# --------------------------------------------------------------------------- quality


def log_spectral_distance(reference: np.ndarray, test: np.ndarray, n_fft: int = 1024,
                          hop: int = 160) -> float:
    """Mean over frames of the RMS dB difference of the power spectra (speech frames only:
    frames more than 60 dB under the reference's loudest are left out)."""
    from scipy.signal import stft

    _, _, a = stft(reference, nperseg=n_fft, noverlap=n_fft - hop)
    _, _, b = stft(test, nperseg=n_fft, noverlap=n_fft - hop)
    pa = np.abs(a) ** 2 + 1e-10
    pb = np.abs(b) ** 2 + 1e-10
    energy = 10 * np.log10(pa.sum(axis=0))
    keep = energy > energy.max() - 60
    difference = 10 * np.log10(pa[:, keep]) - 10 * np.log10(pb[:, keep])
    return float(np.mean(np.sqrt(np.mean(difference ** 2, axis=0))))


def mel_l1(reference: np.ndarray, test: np.ndarray, config: VocoderConfig,
           floor_db: float | None = None) -> float:
    """Mean |log-mel difference| (natural log, the vocoder's own analysis) on the reference's
    peak scale: both clips are scaled by the same gain, so a level mismatch counts.

    With ``floor_db``, both log-mels are first raised to the reference's loudest bin minus
    that many dB, so near-empty bands (FSDD has nothing above 4 kHz) and digital silence, where
    any noise floor is a large log difference, do not dominate the figure.
    """
    import tensorflow as tf

    gain = PEAK / max(float(np.max(np.abs(reference))), 1e-9)
    length = max(config.n_fft, math.ceil(len(reference) / config.hop) * config.hop)
    pair = np.zeros((2, length), np.float32)
    pair[0, :len(reference)] = reference * gain
    pair[1, :len(test)] = test[:len(reference)] * gain
    mel = log_mel(tf.constant(pair), config).numpy()
    frames = math.ceil(len(reference) / config.hop)
    mel = mel[:, :frames]
    if floor_db is not None:
        mel = np.maximum(mel, mel[0].max() - floor_db / 20 * math.log(10))
    return float(np.mean(np.abs(mel[0] - mel[1])))


def quality_report(sources: Sequence[np.ndarray], twins: Sequence[np.ndarray],
                   config: VocoderConfig, seed: int = 0) -> dict[str, float]:
    """Mean mel L1 and LSD of twins against their sources, and the same figures for two
    references a working vocoder must beat by far: RMS-matched white noise, and the source's
    own spectrum with its time order scrambled (speech-like spectra in the wrong place)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[float]] = {k: [] for k in (
        "mel_l1", "mel_l1_60db", "lsd_db", "noise_mel_l1", "noise_mel_l1_60db", "noise_lsd_db",
        "shuffled_mel_l1", "shuffled_mel_l1_60db")}
    for source, twin in zip(sources, twins, strict=True):
        noise = rng.standard_normal(len(source)).astype(np.float32)
        noise *= rms(source) / max(rms(noise), 1e-12)
        hop = config.hop
        blocks = [source[i:i + hop] for i in range(0, len(source), hop)]
        shuffled = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        for name, other in (("", twin), ("noise_", noise), ("shuffled_", shuffled)):
            rows[f"{name}mel_l1"].append(mel_l1(source, other, config))
            rows[f"{name}mel_l1_60db"].append(mel_l1(source, other, config, floor_db=60.0))
        rows["lsd_db"].append(log_spectral_distance(source, twin))
        rows["noise_lsd_db"].append(log_spectral_distance(source, noise))
    return {k: float(np.mean(v)) for k, v in rows.items()}


# --------------------------------------------------------------------------- command line


def _bonafide(root: Path, split: str):
    from host_training.datasets import DatasetError, load_split

    try:
        utterances = [u for u in load_split(root, split) if u.key == "bonafide"]
    except DatasetError as error:
        raise VocoderError(str(error)) from None
    if not utterances:
        raise VocoderError(f"{root}: no bona fide clips in split {split!r}")
    missing = [u.path for u in utterances if not u.path.is_file()]
    if missing:
        raise VocoderError(f"{missing[0]}: audio file missing "
                           f"({len(missing)} of {len(utterances)} bona fide clips)")
    return utterances


def _load(utterances, sample_rate: int, cache_dir: Path | None) -> list[np.ndarray]:
    from edge_runtime.errors import AudioError
    from host_training.waveforms import load_waveforms

    try:
        return load_waveforms(utterances, sample_rate, cache_dir=cache_dir)
    except AudioError as error:
        raise VocoderError(str(error)) from None


FULL_SCALE = 32767 / 32768


def write_flac(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit FLAC written to a temporary name and renamed, so a file is whole or absent.

    A twin whose RMS match to a loud source pushes peaks past full scale is scaled down
    instead of clipped: hard clipping would be an artefact of this script, not of the
    vocoder, and a detector must not learn it as a spoof cue.
    """
    import soundfile as sf

    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > FULL_SCALE:
        audio = audio * (FULL_SCALE / peak)
    with atomic_output(path) as temporary:
        sf.write(temporary, audio, rate, subtype="PCM_16", format="FLAC")


def vocode_corpus(vocoder: Vocoder, utterances, waves: Sequence[np.ndarray], out: Path,
                  split: str, name: str, batch_seconds: float = 24.0,
                  show_progress: bool = True) -> dict[str, float]:
    """Writes ``out/<split>/flac/<UTT>_<name>.flac`` and ``out/protocols/<split>.txt``
    (``SPEAKER UTT_<name> - neural_<name> spoof``). Twins already on disk are kept (a run
    that was stopped resumes); the protocol is written last, atomically."""
    rate = vocoder.config.sample_rate
    audio_dir = out / split / "flac"
    audio_dir.mkdir(parents=True, exist_ok=True)
    (out / "protocols").mkdir(parents=True, exist_ok=True)
    ids = [f"{u.path.stem}_{name}" for u in utterances]
    todo = [i for i, twin_id in enumerate(ids) if not (audio_dir / f"{twin_id}.flac").is_file()]
    # Similar lengths share a chunk, so batches carry little padding.
    todo.sort(key=lambda i: len(waves[i]))
    seconds = sum(len(waves[i]) for i in todo) / rate
    started = time.monotonic()
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"vocoding ({name})", unit="clip")
    # Written per batch, so a stopped run keeps everything it finished.
    chunk = 64
    for begin in range(0, len(todo), chunk):
        members = todo[begin:begin + chunk]
        twins = resynthesize_many([waves[i] for i in members], rate, vocoder,
                                  batch_seconds=batch_seconds, seed=begin,
                                  progress=bar.update if bar is not None else None)
        for i, twin in zip(members, twins, strict=True):
            write_flac(audio_dir / f"{ids[i]}.flac", twin, rate)
    if bar is not None:
        bar.close()
    elapsed = time.monotonic() - started
    protocol = out / "protocols" / f"{split}.txt"
    lines = [f"{u.speaker} {twin_id} - neural_{name} spoof\n"
             for u, twin_id in zip(utterances, ids, strict=True)]
    write_text_atomically(protocol, "".join(lines))
    return {"clips": len(todo), "audio_seconds": seconds, "wall_seconds": elapsed,
            "realtime_factor": seconds / elapsed if elapsed > 0 else math.inf}


def build_cli():
    """The click group behind `edge-train vocoder` and `python -m host_training.neural_vocoder`."""
    import click

    def fail(message: str) -> None:
        click.echo(f"neural_vocoder: error: {message}", err=True)
        sys.exit(2)

    data_option = click.option(
        "--data", "data_root", type=click.Path(path_type=Path, file_okay=False), default=None,
        help="Corpus root (default: $EDGE_DETECT_DATA, else ../shared/data/spoofmix).")
    cache_option = click.option(
        "--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
        default=Path("cache"), show_default=True, help="Folder for decoded-audio caches.")

    def root_of(data_root: Path | None) -> Path:
        from host_training.datasets import default_data_root

        return data_root or default_data_root()

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def main() -> None:
        """Small neural vocoders trained on bona fide speech, and their vocoded twins."""

    @main.command()
    @click.option("--family", type=click.Choice(FAMILIES), default="hifigan", show_default=True)
    @click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=8.0,
                  show_default=True, help="Wall-time budget of the training loop.")
    @click.option("--steps", type=click.IntRange(1), default=None,
                  help="Stop after this many steps (if the time budget is not spent first).")
    @click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
                  required=True, help="Folder for the weights and config.json.")
    @data_option
    @cache_option
    @click.option("--split", default="train", show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--batch-size", type=click.IntRange(1), default=None)
    @click.option("--log-every", type=click.IntRange(1), default=50, show_default=True)
    def train(family: str, minutes: float, steps: int | None, out_dir: Path,
              data_root: Path | None, cache_dir: Path, split: str, seed: int,
              batch_size: int | None, log_every: int) -> None:
        """Train a vocoder on the bona fide clips of a split."""
        from dataclasses import replace

        try:
            config = family_config(family)
            if batch_size is not None:
                config = replace(config, batch_size=batch_size)
            utterances = _bonafide(root_of(data_root), split)
            waves = _load(utterances, config.sample_rate, cache_dir)
            summary = train_vocoder(config, waves, out_dir, minutes=minutes, max_steps=steps,
                                    seed=seed, log_every=log_every)
        except VocoderError as error:
            fail(str(error))
            return
        click.echo(f"{family}: {summary.params:,} params, {summary.steps} steps in "
                   f"{summary.minutes:.1f} min, loss {summary.first_loss:.4f} -> "
                   f"{summary.final_loss:.4f} (stft {summary.final_stft_loss:.4f}, "
                   f"mel L1 {summary.final_mel_l1:.4f}); saved to {out_dir}")

    @main.command()
    @click.option("--vocoder", "vocoder_dir", type=click.Path(path_type=Path), required=True)
    @data_option
    @cache_option
    @click.option("--split", default="train", show_default=True)
    @click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
                  required=True, help="Twins corpus root (protocols/ + <split>/flac/).")
    @click.option("--name", default=None,
                  help="Suffix of twin ids and system name neural_<name> (default: family).")
    @click.option("--batch-seconds", type=click.FloatRange(min=1), default=24.0,
                  show_default=True, help="Audio per synthesis batch (memory vs speed).")
    def vocode(vocoder_dir: Path, data_root: Path | None, cache_dir: Path, split: str,
               out_dir: Path, name: str | None, batch_seconds: float) -> None:
        """Write the vocoded twin of every bona fide clip of a split."""
        if out_dir.exists() and not out_dir.is_dir():
            fail(f"{out_dir}: exists and is not a folder")
        if name is not None and (not name or any(c.isspace() or c == "/" for c in name)):
            fail(f"--name {name!r}: use a non-empty name without spaces or '/'")
        try:
            vocoder = load_vocoder(vocoder_dir)
            utterances = _bonafide(root_of(data_root), split)
            waves = _load(utterances, vocoder.config.sample_rate, cache_dir)
            stats = vocode_corpus(vocoder, utterances, waves, out_dir, split,
                                  name or vocoder.config.family, batch_seconds)
        except VocoderError as error:
            fail(str(error))
            return
        except OSError as error:
            fail(f"{out_dir}: cannot write ({error.strerror or error})")
            return
        click.echo(f"{stats['clips']} twins, {stats['audio_seconds'] / 60:.1f} min of audio in "
                   f"{stats['wall_seconds']:.0f} s ({stats['realtime_factor']:.0f}x real time); "
                   f"protocol {out_dir / 'protocols' / f'{split}.txt'}")

    @main.command()
    @click.option("--vocoder", "vocoder_dir", type=click.Path(path_type=Path), required=True)
    @data_option
    @cache_option
    @click.option("--split", default="dev", show_default=True)
    @click.option("--clips", type=click.IntRange(1), default=50, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def quality(vocoder_dir: Path, data_root: Path | None, cache_dir: Path, split: str,
                clips: int, seed: int, as_json: bool) -> None:
        """Mel L1 and log-spectral distance of twins vs sources on held-out bona fide clips."""
        try:
            vocoder = load_vocoder(vocoder_dir)
            utterances = _bonafide(root_of(data_root), split)
            waves = _load(utterances, vocoder.config.sample_rate, cache_dir)
        except VocoderError as error:
            fail(str(error))
            return
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(waves), min(clips, len(waves)), replace=False))
        sources = [waves[i] for i in chosen]
        started = time.monotonic()
        twins = resynthesize_many(sources, vocoder.config.sample_rate, vocoder)
        elapsed = time.monotonic() - started
        report = quality_report(sources, twins, vocoder.config, seed)
        report.update({"clips": len(sources), "split": split,
                       "audio_seconds": sum(len(s) for s in sources) / vocoder.config.sample_rate,
                       "wall_seconds": elapsed})
        if as_json:
            click.echo(json.dumps(report))
            return
        click.echo(f"{vocoder.config.family} on {len(sources)} {split} bona fide clips "
                   f"({report['audio_seconds']:.0f} s audio, vocoded in {elapsed:.1f} s): "
                   f"mel L1 {report['mel_l1']:.3f} (white noise {report['noise_mel_l1']:.3f}, "
                   f"time-shuffled source {report['shuffled_mel_l1']:.3f}); "
                   f"floored at -60 dB {report['mel_l1_60db']:.3f} "
                   f"(noise {report['noise_mel_l1_60db']:.3f}, "
                   f"shuffled {report['shuffled_mel_l1_60db']:.3f}), "
                   f"LSD {report['lsd_db']:.2f} dB (white noise {report['noise_lsd_db']:.2f} dB)")

    return main


def main(argv: Sequence[str] | None = None) -> None:
    build_cli()(args=argv, prog_name="python -m host_training.neural_vocoder")


if __name__ == "__main__":
    main()
