"""TensorFlow side: log-mel analysis, the multi-resolution STFT loss, and the generators."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from host_training.vocoders.config import LOG_FLOOR, VocoderConfig

# Set before TensorFlow is first imported (inside the functions below).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def mel_filterbank(config: VocoderConfig):
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
    matrix = mel_filterbank(config) if mel_matrix is None else mel_matrix
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
