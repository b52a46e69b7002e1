"""Vocoder families and their settings (a folder's config.json), and the error type."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

FAMILIES = ("hifigan", "melgan", "nsf")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.weights.h5"
# Inputs are scaled to this peak before analysis (as HiFi-GAN's training data is), so a vocoder
# trained for minutes does not also have to learn every recording level; the output is
# RMS-matched back to the source afterwards.
PEAK = 0.95
LOG_FLOOR = 1e-5


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """float32 audio scaled to PEAK (silence stays silence)."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (PEAK / peak)).astype(np.float32) if peak > 0 else audio.astype(np.float32)


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
