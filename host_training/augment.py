"""On-the-fly waveform augmentation, seeded; each effect has a probability in the config.

Effects, in the order ``augment`` applies them (a clip passes through a room, then a channel,
then a gain stage): silence trim, time shift, pitch (speed) variation, room reverberation
(a synthetic impulse response), additive noise (white,
coloured 1/f^a or babble made from other clips), RawBoost (Tak et al., ICASSP 2022: linear and
non-linear convolutive noise, impulsive signal-dependent noise, stationary signal-independent
noise), telephone band-limit (resampled through 8 kHz on the waveform), 8-bit mu-law, a lossy
codec round trip in memory (MP3 / Ogg Vorbis / Ogg Opus via libsndfile), gain.

Every effect is a plain function ``(audio, rng, ...) -> float32 array of the same length`` so
training, tests and benchmarks can call them one by one. New effects default to probability 0:
the default config augments exactly as before they existed (same random stream too).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
from scipy import signal

from edge_runtime.audio import rms
from edge_runtime.frontend import DEFAULT_SAMPLE_RATE

NOISE_TYPES = ("white", "coloured", "babble")
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}


@dataclass(frozen=True)
class AugmentConfig:
    gain_prob: float = 0.8
    gain_db: float = 12.0
    noise_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    # One of these is drawn per noisy clip; babble needs a bank of other clips (else skipped).
    noise_types: tuple[str, ...] = ("white",)
    noise_colour_exponent: tuple[float, float] = (0.5, 2.0)  # a of 1/f^a: 1 pink, 2 brown
    babble_talkers: tuple[int, int] = (3, 6)
    trim_prob: float = 0.5
    trim_threshold_db: float = 40.0
    shift_prob: float = 0.0
    shift_max_seconds: float = 0.5
    pitch_prob: float = 0.0
    pitch_semitones: float = 2.0  # speed perturbation of up to +- this many semitones
    # A room: the clip convolved with a synthetic impulse response (direct sound, then a tail of
    # noise decaying 60 dB in ``reverb_rt60_seconds``, its highs damped faster), the tail's
    # energy ``reverb_drr_db`` below the direct sound. Real speech recorded away from the
    # microphone (podcasts, video, calls on speaker) should not look like a vocoder's smearing.
    reverb_prob: float = 0.0
    reverb_rt60_seconds: tuple[float, float] = (0.2, 0.8)
    reverb_drr_db: tuple[float, float] = (0.0, 12.0)
    rawboost_lnl_prob: float = 0.0  # RawBoost (1): linear and non-linear convolutive noise
    rawboost_isd_prob: float = 0.0  # RawBoost (2): impulsive signal-dependent noise
    rawboost_ssi_prob: float = 0.0  # RawBoost (3): stationary signal-independent noise
    rawboost_bands: int = 5
    rawboost_nonlinear_order: int = 5
    rawboost_isd_percent: float = 10.0
    rawboost_isd_gain: float = 2.0
    rawboost_ssi_snr_db: tuple[float, float] = (10.0, 40.0)
    bandlimit_prob: float = 0.0
    bandlimit_rates: tuple[int, ...] = (8000,)  # round trip through one of these rates
    mulaw_prob: float = 0.0
    codec_prob: float = 0.0
    codec_formats: tuple[str, ...] = ("mp3", "vorbis")  # "opus" too, but ~5x slower
    codec_compression: tuple[float, float] = (0.0, 0.95)  # libsndfile level: 0 best, 1 worst
    # Scoring repeat-pads short clips, and short clips are mostly bona fide in spoofmix: cutting
    # a random short segment of any clip (then repeat-padding it) puts padding in both classes,
    # so duration stops being a cue. Applied when the training window is cut (features.py).
    short_crop_prob: float = 0.0
    short_crop_seconds: tuple[float, float] = (0.5, 3.0)
    # A random smooth equaliser on the window's features, before the masks: the log band
    # energies get a zero-mean curve of a few cosines across the bands, peaking at up to
    # ``spectral_eq_db`` dB (a microphone, room or channel response); under window-mean
    # normalisation this is what filtering the waveform would do, and real speech from an
    # unseen microphone should not look like an unseen vocoder.
    spectral_eq_prob: float = 0.0
    spectral_eq_db: float = 6.0
    # SpecAugment-style masks on the window's features (after the front end): whole bands, or
    # whole frames, set to 0 (under window-mean normalisation, a band's mean over the window). Up to
    # ``*_mask_count`` masks of 1 to ``*_mask_width`` bands (frames) each.
    freq_mask_prob: float = 0.0
    freq_mask_count: int = 2
    freq_mask_width: int = 16
    time_mask_prob: float = 0.0
    time_mask_count: int = 2
    time_mask_width: int = 40
    # Mixup (Zhang et al. 2018) across a batch's windows, after the masks: a share of windows
    # become lam * own + (1 - lam) * another window's features, targets and weights alike, lam
    # drawn from Beta(alpha, alpha) and kept at 0.5 or more so each window stays mostly itself.
    mixup_prob: float = 0.0
    mixup_alpha: float = 0.4

    def __post_init__(self) -> None:
        # Checked here so a bad [augment] section fails when the config is loaded, not mid-epoch.
        for name, value in vars(self).items():
            if name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} = {value}: a probability must be in [0, 1]")
        unknown = sorted(set(self.noise_types) - set(NOISE_TYPES))
        if unknown:
            raise ValueError(f"noise_types: unknown {unknown}; known: {', '.join(NOISE_TYPES)}")
        unknown = sorted(set(self.codec_formats) - set(CODECS))
        if unknown:
            raise ValueError(f"codec_formats: unknown {unknown}; known: {', '.join(CODECS)}")
        for name in ("noise_snr_db", "noise_colour_exponent", "babble_talkers",
                     "reverb_rt60_seconds", "reverb_drr_db",
                     "rawboost_ssi_snr_db", "codec_compression", "short_crop_seconds"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} = {getattr(self, name)}: expected (low, high)")
        if not self.bandlimit_rates or min(self.bandlimit_rates) < 1000:
            raise ValueError(f"bandlimit_rates = {self.bandlimit_rates}: expected rates in Hz")
        for name in ("freq_mask_count", "freq_mask_width", "time_mask_count", "time_mask_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)}: expected 1 or more")
        if self.mixup_alpha <= 0:
            raise ValueError(f"mixup_alpha = {self.mixup_alpha}: expected more than 0")
        if self.reverb_rt60_seconds[0] <= 0:
            raise ValueError(f"reverb_rt60_seconds = {self.reverb_rt60_seconds}: expected "
                             "seconds above 0")
        if self.spectral_eq_db < 0:
            raise ValueError(f"spectral_eq_db = {self.spectral_eq_db}: expected 0 or more")


def _happens(rng: np.random.Generator, prob: float) -> bool:
    """Draws only for enabled effects, so adding an effect at probability 0 leaves the random
    stream (and so the output of older configs) unchanged."""
    return prob > 0 and rng.random() < prob



def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop, or repeat-pad, to ``length`` samples."""
    if audio.shape[0] >= length:
        return audio[:length]
    if audio.shape[0] == 0:
        return np.zeros(length, dtype=audio.dtype)
    return np.tile(audio, -(-length // audio.shape[0]))[:length]


def _mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    scale = (rms(audio) + 1e-9) / (rms(noise) + 1e-12) / 10.0 ** (snr_db / 20.0)
    return (audio + noise * scale).astype(np.float32)


def random_gain(audio: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    gain = 10.0 ** (rng.uniform(-max_db, max_db) / 20.0)
    out = audio * gain
    peak = np.max(np.abs(out)) if out.size else 0.0
    return out / peak * 0.99 if peak > 0.99 else out


def add_white_noise(audio: np.ndarray, rng: np.random.Generator,
                    snr_range: tuple[float, float]) -> np.ndarray:
    power = float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    snr = rng.uniform(*snr_range)
    noise = rng.standard_normal(audio.shape[0]) * np.sqrt(power / 10.0 ** (snr / 10.0))
    return (audio + noise).astype(np.float32)


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n=length)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def add_coloured_noise(audio: np.ndarray, rng: np.random.Generator,
                       snr_range: tuple[float, float],
                       exponent_range: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    noise = coloured_noise(audio.shape[0], rng.uniform(*exponent_range), rng)
    return _mix_at_snr(audio, noise, rng.uniform(*snr_range))


def babble(length: int, bank: Sequence[np.ndarray], talkers: int,
           rng: np.random.Generator) -> np.ndarray:
    """A sum of ``talkers`` random excerpts of clips from ``bank``, each at the same level."""
    out = np.zeros(length, dtype=np.float64)
    for index in rng.choice(len(bank), size=talkers, replace=len(bank) < talkers):
        clip = np.asarray(bank[index], dtype=np.float64)
        if clip.shape[0] > length:
            start = int(rng.integers(0, clip.shape[0] - length + 1))
            clip = clip[start:start + length]
        else:
            clip = np.roll(_fit_length(clip, length), int(rng.integers(0, length)))
        out += clip / (rms(clip) + 1e-9)
    return out.astype(np.float32)


def add_babble(audio: np.ndarray, rng: np.random.Generator, bank: Sequence[np.ndarray],
               snr_range: tuple[float, float], talkers: tuple[int, int] = (3, 6)) -> np.ndarray:
    count = int(rng.integers(talkers[0], talkers[1] + 1))
    return _mix_at_snr(audio, babble(audio.shape[0], bank, count, rng), rng.uniform(*snr_range))


def time_shift(audio: np.ndarray, rng: np.random.Generator, max_seconds: float,
               rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Circular shift by up to ``max_seconds`` either way. Wrapping rather than zero-filling:
    digital silence is absent from most bona fide recordings and would become a cue."""
    limit = min(int(max_seconds * rate), audio.shape[0] - 1)
    if limit < 1:
        return audio.astype(np.float32, copy=True)
    shift = int(rng.integers(-limit, limit + 1))
    return np.roll(audio, shift).astype(np.float32)


def change_pitch(audio: np.ndarray, rng: np.random.Generator, max_semitones: float) -> np.ndarray:
    """Speed perturbation: resampling raises or lowers pitch and formants together, as a
    different speaker or a tape running at another speed would, without the phase-vocoder
    smearing a time-stretch would add (that smearing is a spoof cue). The result is cropped or
    repeat-padded back to the input length. The speed ratio is rounded to a fraction with a
    denominator of at most 64 to keep the polyphase filter short, so shifts under about 0.13
    semitone round to none."""
    factor = 2.0 ** (rng.uniform(-max_semitones, max_semitones) / 12.0)
    ratio = Fraction(1.0 / factor).limit_denominator(64)
    if ratio == 1 or audio.shape[0] < 2:
        return audio.astype(np.float32, copy=True)
    out = signal.resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    return _fit_length(out, audio.shape[0]).astype(np.float32)


def band_limit(audio: np.ndarray, rng: np.random.Generator, rates: Sequence[int] = (8000,),
               rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Resample down to one of ``rates`` and back: removes everything above its Nyquist, as a
    telephone line or an 8 kHz recording upsampled later does."""
    low = int(rates[int(rng.integers(0, len(rates)))])
    if low >= rate:
        return audio.astype(np.float32, copy=True)
    ratio = Fraction(low, rate)
    down = signal.resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    up = signal.resample_poly(down, ratio.denominator, ratio.numerator)
    return _fit_length(up, audio.shape[0]).astype(np.float32)


def mulaw_roundtrip(audio: np.ndarray, bits: int = 8, mu: float = 255.0) -> np.ndarray:
    """G.711-style mu-law companding to ``bits`` bits and back."""
    x = np.clip(audio.astype(np.float64), -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    levels = 2 ** bits - 1
    quantised = np.round((compressed + 1.0) / 2.0 * levels) / levels * 2.0 - 1.0
    out = np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu
    return out.astype(np.float32)


@cache
def codec_available(name: str, rate: int = DEFAULT_SAMPLE_RATE) -> bool:
    """Whether this libsndfile can encode and decode ``name`` at ``rate`` in memory."""
    import soundfile as sf

    if name not in CODECS:
        return False
    container, subtype = CODECS[name]
    try:
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros(rate // 10, dtype=np.float32), rate, format=container,
                 subtype=subtype)
        buffer.seek(0)
        sf.read(buffer, dtype="float32")
    except (sf.LibsndfileError, TypeError, ValueError, RuntimeError):
        return False
    return True


def codec_roundtrip(audio: np.ndarray, codec: str, compression: float,
                    rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Encode with a lossy codec in memory and decode again (same length, float32).

    Raises:
        ValueError: the codec is unknown or this libsndfile cannot encode it.
    """
    import soundfile as sf

    if not codec_available(codec, rate):
        raise ValueError(f"codec '{codec}' is not available in this libsndfile "
                         f"(known: {', '.join(CODECS)})")
    container, subtype = CODECS[codec]
    buffer = io.BytesIO()
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scale = 0.99 / peak if peak > 0.99 else 1.0  # encoders clip above full scale
    sf.write(buffer, audio.astype(np.float32) * scale, rate, format=container, subtype=subtype,
             compression_level=float(np.clip(compression, 0.0, 0.95)))
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=False)
    if decoded.ndim > 1:
        decoded = decoded.mean(axis=1)
    return (_fit_length(decoded, audio.shape[0]) / scale).astype(np.float32)


def random_codec(audio: np.ndarray, rng: np.random.Generator, codecs: Sequence[str],
                 compression: tuple[float, float], rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    usable = [c for c in codecs if codec_available(c, rate)]
    if not usable:
        return audio.astype(np.float32, copy=True)
    codec = usable[int(rng.integers(0, len(usable)))]
    return codec_roundtrip(audio, codec, rng.uniform(*compression), rate)


# RawBoost. Parameters default to those of the reference implementation (Tak et al. 2022,
# github.com/TakHemlata/RawBoost-antispoofing): 5 notch bands of 100-1000 Hz centred anywhere in
# 20 Hz .. Nyquist, FIR orders 10-100, non-linear terms 5-20 dB below the linear one.


@dataclass(frozen=True)
class NotchBank:
    bands: int = 5
    min_freq: float = 20.0
    max_freq: float = 8000.0
    min_width: float = 100.0
    max_width: float = 1000.0
    min_taps: int = 10
    max_taps: int = 100
    min_gain_db: float = 0.0
    max_gain_db: float = 0.0


def notch_filter(bank: NotchBank, rng: np.random.Generator, rate: int = DEFAULT_SAMPLE_RATE,
                 gain_range_db: tuple[float, float] | None = None) -> np.ndarray:
    """FIR taps of a cascade of ``bank.bands`` random band-stop filters, scaled so the peak of
    the magnitude response is the random gain."""
    taps = np.ones(1)
    nyquist = rate / 2.0
    for _ in range(bank.bands):
        centre = rng.uniform(bank.min_freq, min(bank.max_freq, nyquist))
        width = rng.uniform(bank.min_width, bank.max_width)
        count = int(rng.uniform(bank.min_taps, bank.max_taps))
        count += 1 - count % 2  # a band-stop passes Nyquist: odd length
        low = max(centre - width / 2.0, 1e-3)
        high = min(centre + width / 2.0, nyquist - 1e-3)
        if high <= low:
            continue
        taps = np.convolve(signal.firwin(count, [low, high], window="hamming", fs=rate), taps)
    low_db, high_db = gain_range_db or (bank.min_gain_db, bank.max_gain_db)
    gain_db = rng.uniform(min(low_db, high_db), max(low_db, high_db))
    _, response = signal.freqz(taps, 1, worN=512, fs=rate)
    return taps * 10.0 ** (gain_db / 20.0) / (np.max(np.abs(response)) + 1e-12)


def _fir(audio: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-phase-delay FIR filtering (the taps are linear phase: drop the group delay)."""
    full = signal.fftconvolve(audio, taps, mode="full")
    delay = (taps.shape[0] - 1) // 2
    return full[delay:delay + audio.shape[0]]


def _peak_limit(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 1.0 else audio


def rawboost_convolutive(audio: np.ndarray, rng: np.random.Generator, order: int = 5,
                         bank: NotchBank = NotchBank(), bias_db: tuple[float, float] = (5.0, 20.0),
                         rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """RawBoost (1): sum over k = 1..order of x^k, each through its own random notch-filter
    cascade; the non-linear terms (k >= 2) sit ``bias_db`` below the linear one. Models the
    stationary channel and the harmonic distortion of transducers."""
    x = audio.astype(np.float64)
    out = np.zeros_like(x)
    nonlinear_gain = (bank.min_gain_db - bias_db[0], bank.max_gain_db - bias_db[1])
    for k in range(1, max(1, order) + 1):
        taps = notch_filter(bank, rng, rate, None if k == 1 else nonlinear_gain)
        out += _fir(x ** k, taps)
    out -= out.mean()
    return _peak_limit(out).astype(np.float32)


def rawboost_impulsive(audio: np.ndarray, rng: np.random.Generator, max_percent: float = 10.0,
                       gain: float = 2.0) -> np.ndarray:
    """RawBoost (2): up to ``max_percent`` % of the samples, at random positions, get a
    signal-dependent impulsive error ``gain * x * u1 * u2`` (u uniform in [-1, 1]), as from
    clipping, bit errors or a bad ADC."""
    x = audio.astype(np.float64)
    count = int(x.shape[0] * rng.uniform(0.0, max_percent) / 100.0)
    out = x.copy()
    if count:
        where = rng.choice(x.shape[0], size=count, replace=False)
        factor = (2 * rng.random(count) - 1) * (2 * rng.random(count) - 1)
        out[where] += gain * x[where] * factor
    return _peak_limit(out).astype(np.float32)


def rawboost_stationary(audio: np.ndarray, rng: np.random.Generator,
                        snr_range: tuple[float, float] = (10.0, 40.0),
                        bank: NotchBank = NotchBank(),
                        rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """RawBoost (3): white noise through a random notch-filter cascade, added at a random SNR
    (electrical hum, fans, a noisy line)."""
    noise = _fir(rng.standard_normal(audio.shape[0]), notch_filter(bank, rng, rate))
    return _mix_at_snr(audio, noise, rng.uniform(*snr_range))


def room_impulse_response(rng: np.random.Generator, rt60_seconds: float, drr_db: float,
                          rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """A synthetic room: a unit direct path, then after 1-5 ms a tail of Gaussian noise that
    decays 60 dB in ``rt60_seconds`` (cut there) and is low-passed (air and walls absorb the
    highs), scaled so its energy is ``drr_db`` below the direct sound's."""
    length = int(rt60_seconds * rate)
    pre_delay = int(rng.uniform(0.001, 0.005) * rate)
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60_seconds)
    cutoff = rng.uniform(2000.0, 0.45 * rate)
    tail = signal.lfilter(*signal.butter(1, cutoff, fs=rate), tail)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail ** 2) + 1e-12))
    response = np.zeros(pre_delay + length)
    response[0] = 1.0
    response[pre_delay:] += tail
    return response


def reverberate(audio: np.ndarray, rng: np.random.Generator,
                rt60_seconds: tuple[float, float], drr_db: tuple[float, float],
                rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """The clip in a random synthetic room, same length and RMS (the gain stage sets level)."""
    response = room_impulse_response(rng, rng.uniform(*rt60_seconds), rng.uniform(*drr_db), rate)
    wet = signal.fftconvolve(audio, response, mode="full")[:audio.shape[0]]
    return (wet * ((rms(audio) + 1e-12) / (rms(wet) + 1e-12))).astype(np.float32)


def trim_silence(audio: np.ndarray, threshold_db: float, frame: int = 400) -> np.ndarray:
    """Drops leading/trailing frames more than ``threshold_db`` below the loudest frame, so
    the amount of silence around an utterance cannot tell the classes apart."""
    count = audio.shape[0] // frame
    if count < 3:
        return audio
    energy = (audio[: count * frame].reshape(count, frame).astype(np.float64) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    loud = np.flatnonzero(level > level.max() - threshold_db)
    start, stop = loud[0] * frame, (loud[-1] + 1) * frame
    trimmed = audio[start:stop]
    return trimmed if trimmed.shape[0] >= frame * 3 else audio


def add_noise(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
              bank: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """One of the configured noise types at a random SNR."""
    types = [t for t in config.noise_types if t != "babble" or bank]
    if not types:
        return audio
    kind = types[0] if len(types) == 1 else types[int(rng.integers(0, len(types)))]
    if kind == "white":
        return add_white_noise(audio, rng, config.noise_snr_db)
    if kind == "coloured":
        return add_coloured_noise(audio, rng, config.noise_snr_db, config.noise_colour_exponent)
    return add_babble(audio, rng, bank or [], config.noise_snr_db, config.babble_talkers)


def augment(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
            noise_bank: Sequence[np.ndarray] | None = None,
            rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """One random augmentation of a clip (float32; same length unless silence is trimmed).

    Args:
        audio: mono float samples at ``rate`` (the front end's sample rate).
        rng: the only source of randomness, so a seed reproduces the output.
        config: effect probabilities and ranges.
        noise_bank: other clips to make babble from (bona fide speech is the natural choice);
            without it, babble is left out of the noise types.
    """
    out = audio.astype(np.float32, copy=True)
    if rng.random() < config.trim_prob:
        out = trim_silence(out, config.trim_threshold_db)
    if _happens(rng, config.shift_prob):
        out = time_shift(out, rng, config.shift_max_seconds, rate)
    if _happens(rng, config.pitch_prob):
        out = change_pitch(out, rng, config.pitch_semitones)
    if _happens(rng, config.reverb_prob):
        out = reverberate(out, rng, config.reverb_rt60_seconds, config.reverb_drr_db, rate)
    if rng.random() < config.noise_prob:
        out = add_noise(out, rng, config, noise_bank)
    bank = NotchBank(bands=config.rawboost_bands, max_freq=rate / 2.0)
    if _happens(rng, config.rawboost_lnl_prob):
        out = rawboost_convolutive(out, rng, config.rawboost_nonlinear_order, bank, rate=rate)
    if _happens(rng, config.rawboost_isd_prob):
        out = rawboost_impulsive(out, rng, config.rawboost_isd_percent, config.rawboost_isd_gain)
    if _happens(rng, config.rawboost_ssi_prob):
        out = rawboost_stationary(out, rng, config.rawboost_ssi_snr_db, bank, rate)
    if _happens(rng, config.bandlimit_prob):
        out = band_limit(out, rng, config.bandlimit_rates, rate)
    if _happens(rng, config.mulaw_prob):
        out = mulaw_roundtrip(out)
    if _happens(rng, config.codec_prob):
        out = random_codec(out, rng, config.codec_formats, config.codec_compression, rate)
    if rng.random() < config.gain_prob:
        out = random_gain(out, rng, config.gain_db)
    return out.astype(np.float32)


def _mask_rows(rows: np.ndarray, rng: np.random.Generator, count: int, width: int) -> None:
    """Zeroes 1 to ``count`` runs of 1 to ``width`` rows of ``rows`` (a view: the caller's
    frames, or its bands through ``.T``)."""
    size = rows.shape[0]
    for _ in range(int(rng.integers(1, count + 1))):
        span = int(rng.integers(1, min(width, size) + 1))
        start = int(rng.integers(0, size - span + 1))
        rows[start:start + span] = 0.0


EQ_COSINES = 4  # terms of the equaliser curve: smooth across the bands, one to four bumps


def eq_curve(bands: int, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """A random smooth zero-mean gain curve (dB) over ``bands`` bands whose largest deviation
    is uniform in [0, ``max_db``]: cosines of 1 to ``EQ_COSINES`` half-periods, each of a
    random amplitude (smaller for faster ones) and sign."""
    position = (np.arange(bands) + 0.5) / bands
    orders = np.arange(1, EQ_COSINES + 1)
    amplitudes = rng.standard_normal(EQ_COSINES) / orders
    curve = amplitudes @ np.cos(np.pi * orders[:, None] * position[None, :])
    peak = float(np.max(np.abs(curve)))
    if peak == 0.0:
        return np.zeros(bands, dtype=np.float32)
    return (curve * (rng.uniform(0.0, max_db) / peak)).astype(np.float32)


def mask_features(features: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig) -> np.ndarray:
    """Feature-level augmentation of one window's (frames, bands) features: a random
    equaliser, then SpecAugment-style band and frame masks (no single band or moment can
    carry the decision alone). Returns a changed copy, or ``features`` itself when nothing
    is drawn (every window of a config without them)."""
    out = features
    if _happens(rng, config.spectral_eq_prob):
        out = features + eq_curve(features.shape[1], rng, config.spectral_eq_db)
    if _happens(rng, config.freq_mask_prob):
        if out is features:
            out = features.copy()
        _mask_rows(out.T, rng, config.freq_mask_count, config.freq_mask_width)
    if _happens(rng, config.time_mask_prob):
        if out is features:
            out = features.copy()
        _mask_rows(out, rng, config.time_mask_count, config.time_mask_width)
    return out


def mixup_batch(features: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                rng: np.random.Generator, config: AugmentConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixes a share of a batch's windows with other windows of the same batch (features in
    place; targets and weights returned as new arrays). A bona fide window mixed with a spoof
    one gets a target between the two, so the boundary is taught as a slope, not a cliff."""
    targets = np.asarray(targets, dtype=np.float32).copy()
    weights = np.asarray(weights, dtype=np.float32).copy()
    count = len(features)
    if config.mixup_prob <= 0 or count < 2:
        return features, targets, weights
    mixed = np.flatnonzero(rng.random(count) < config.mixup_prob)
    partners = rng.integers(0, count - 1, size=len(mixed))
    partners += partners >= mixed  # never a window with itself
    lam = rng.beta(config.mixup_alpha, config.mixup_alpha, size=len(mixed))
    lam = np.maximum(lam, 1.0 - lam).astype(np.float32)
    shape = (-1,) + (1,) * (features.ndim - 1)
    features[mixed] = (lam.reshape(shape) * features[mixed]
                       + (1.0 - lam.reshape(shape)) * features[partners])
    targets[mixed] = lam * targets[mixed] + (1.0 - lam) * targets[partners]
    weights[mixed] = lam * weights[mixed] + (1.0 - lam) * weights[partners]
    return features, targets, weights
