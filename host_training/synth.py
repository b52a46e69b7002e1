"""Spoofs made from bona fide speech: copy-synthesis of real clips through several vocoders.

Every bona fide clip gets vocoded twins with the same speaker, words, level and length, so a
detector trained on the pair can only learn what the vocoder changed. This is also how a
voice-lock owner who has only genuine recordings of their users makes spoof training data.

Vocoders (each ``(audio, rate, rng) -> audio``):

- ``world``: WORLD analysis/synthesis (DIO + StoneMask F0, CheapTrick envelope, D4C
  aperiodicity; pyworld).
- ``mlsa``: mel-cepstrum (order 24) + MLSA filter driven by a pulse/noise excitation from SWIPE'
  pitch (pysptk), the HTS-era parametric vocoder.
- ``griffinlim``: STFT magnitude with the phase rebuilt by 32 fast Griffin-Lim iterations from a
  random start (numpy), the vocoder of early neural TTS.
- ``lpc``: 18th-order LPC per 25 ms frame, re-excited by a pulse train at the WORLD F0 or white
  noise, through the all-pole filter with carried state (numpy/scipy), the LPC-10 style codec.

A clip that is band-limited to 4 kHz (8 kHz speech upsampled, as FSDD is) gives a twin
band-limited the same way, so "energy above 4 kHz" never tells the two apart.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg, signal

from edge_runtime.atomic import atomic_output, remove_partial_files, write_text_atomically
from edge_runtime.audio import resample, rms
from host_training.datasets import Utterance
from host_training.engines.corpus import fit_length, scale_to_rms

VocoderFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
SYSTEM_PREFIX = "synth_"


class SynthError(ValueError):
    """A vocoder that is unknown or cannot run here, or a clip it cannot process."""



def _dithered(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float64 with a -100 dBFS dither: log-spectral analysis fails on digital silence."""
    return audio.astype(np.float64) + 1e-5 * rng.standard_normal(audio.shape[0])


def is_narrowband(audio: np.ndarray, rate: int, cutoff: float = 4000.0) -> bool:
    """True when (almost) nothing lies above ``cutoff`` Hz: 8 kHz audio upsampled."""
    if rate <= 2 * cutoff or audio.shape[0] < 256:
        return False
    freqs, power = signal.welch(audio.astype(np.float64), rate, nperseg=256)
    return float(power[freqs > cutoff * 1.05].sum()) < 1e-4 * float(power.sum() + 1e-20)


def _frames(audio: np.ndarray, length: int, hop: int) -> np.ndarray:
    count = 1 + max(0, -(-(audio.shape[0] - length) // hop))
    padded = np.pad(audio, (0, (count - 1) * hop + length - audio.shape[0]))
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::hop][:count]


def _world_f0(x: np.ndarray, rate: int, frame_ms: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    import pyworld

    f0, times = pyworld.dio(x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=frame_ms)
    return pyworld.stonemask(x, f0, times, rate), times


def world(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    import pyworld

    x = _dithered(audio, rng)
    f0, times = _world_f0(x, rate)
    envelope = pyworld.cheaptrick(x, f0, times, rate)
    aperiodicity = pyworld.d4c(x, f0, times, rate)
    return pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=5.0)


def mlsa(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    import pysptk
    from pysptk.synthesis import MLSADF, Synthesizer

    # The MLSA filter's Pade approximation is stable for a bounded cepstral range only: a
    # noise floor 60 dB under the speech keeps the envelope out of digital-silence depths.
    x = audio.astype(np.float64)
    x = x + max(rms(x), 1e-5) * 1e-3 * rng.standard_normal(x.shape[0])
    hop, length, order = rate // 200, 2 ** int(np.ceil(np.log2(rate * 0.032))), 24
    alpha = {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466}.get(rate, 0.42)
    frames = _frames(x, length, hop) * np.blackman(length)
    cepstrum = pysptk.mcep(frames, order=order, alpha=alpha, etype=1, eps=1e-8)
    pitch = pysptk.swipe(x, fs=rate, hopsize=hop, min=60.0, max=500.0, otype="pitch")
    # Centre the analysis frames on the pitch frames (SWIPE' frames are centred on t = k*hop).
    cepstrum = np.concatenate([np.repeat(cepstrum[:1], length // (2 * hop), axis=0), cepstrum])
    count = min(len(pitch), len(cepstrum))
    source = pysptk.excite(pitch[:count].astype(np.float64), hop, gaussian=True,
                           seed=int(rng.integers(1, 2**31 - 1)))
    filters = pysptk.mc2b(cepstrum[:count].astype(np.float64), alpha)
    return Synthesizer(MLSADF(order=order, alpha=alpha, pd=5), hop).synthesis(source, filters)


def griffin_lim(audio: np.ndarray, rate: int, rng: np.random.Generator,
                iterations: int = 32, momentum: float = 0.99) -> np.ndarray:
    n_fft, hop = 2 ** int(np.ceil(np.log2(rate * 0.064))), 2 ** int(np.ceil(np.log2(rate * 0.016)))
    window = signal.get_window("hann", n_fft)
    x = np.pad(audio.astype(np.float64), (n_fft // 2, n_fft // 2), mode="reflect")
    magnitude = np.abs(np.fft.rfft(_frames(x, n_fft, hop) * window, axis=1))
    total = (magnitude.shape[0] - 1) * hop + n_fft
    norm = np.zeros(total)
    for start in range(0, magnitude.shape[0] * hop, hop):
        norm[start:start + n_fft] += window ** 2
    norm = np.maximum(norm, 1e-8)

    def inverse(spectrum: np.ndarray) -> np.ndarray:
        out = np.zeros(total)
        frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * window
        for index, frame in enumerate(frames):
            out[index * hop:index * hop + n_fft] += frame
        return out / norm

    def forward(wave: np.ndarray) -> np.ndarray:
        return np.fft.rfft(_frames(wave, n_fft, hop)[: magnitude.shape[0]] * window, axis=1)

    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    previous = np.zeros_like(phase)
    for _ in range(iterations):
        rebuilt = forward(inverse(magnitude * phase))
        accelerated = rebuilt - momentum / (1 + momentum) * previous
        previous = rebuilt
        phase = accelerated / np.maximum(np.abs(accelerated), 1e-12)
    return inverse(magnitude * phase)[n_fft // 2:n_fft // 2 + audio.shape[0]]


def lpc(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    x = _dithered(audio, rng)
    hop, length = rate // 200, int(rate * 0.025)
    order = 2 + rate // 1000
    emphasised = signal.lfilter([1.0, -0.97], [1.0], x)
    f0, _ = _world_f0(x, rate)
    window = np.hamming(length)
    start_pad = np.pad(emphasised, (length // 2, length))
    frames = _frames(start_pad, length, hop)[: len(f0)] * window
    spectrum = np.fft.rfft(frames, n=2 * length, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : order + 1]
    autocorr[:, 0] *= 1.0 + 1e-9  # white-noise correction keeps the system well conditioned
    out = np.zeros(len(f0) * hop)
    state = np.zeros(order)
    phase = 0.0
    for index, (r, pitch) in enumerate(zip(autocorr, f0, strict=True)):
        if r[0] <= 0:
            continue
        a = linalg.solve_toeplitz(r[:order], -r[1:order + 1])
        gain = np.sqrt(max(r[0] + np.dot(a, r[1:order + 1]), 0.0) / np.sum(window ** 2))
        if pitch > 0:
            period = rate / pitch
            increments = phase + np.arange(1, hop + 1) / period
            excitation = np.diff(np.floor(increments), prepend=np.floor(phase)) * np.sqrt(period)
            phase = increments[-1] % 1.0
        else:
            excitation = rng.standard_normal(hop)
        frame, state = signal.lfilter([gain], np.concatenate([[1.0], a]), excitation, zi=state)
        out[index * hop:(index + 1) * hop] = frame
    return signal.lfilter([1.0], [1.0, -0.97], out)


VOCODERS: dict[str, VocoderFn] = {"world": world, "mlsa": mlsa, "griffinlim": griffin_lim,
                                  "lpc": lpc}
_NEEDS = {"world": ("pyworld",), "mlsa": ("pysptk",), "griffinlim": (), "lpc": ("pyworld",)}


def available_vocoders() -> list[str]:
    """The vocoders whose packages import here (pyworld / pysptk: the ``train`` extra)."""
    import importlib.util

    return [name for name in VOCODERS
            if all(importlib.util.find_spec(module) for module in _NEEDS[name])]


def check_vocoders(names: Sequence[str]) -> list[str]:
    """The names, validated; raises SynthError naming what is unknown or not installed."""
    unknown = [n for n in names if n not in VOCODERS]
    if unknown:
        raise SynthError(f"unknown vocoder(s) {', '.join(unknown)}; known: {', '.join(VOCODERS)}")
    usable = set(available_vocoders())
    missing = [n for n in names if n not in usable]
    if missing:
        needs = sorted({m for n in missing for m in _NEEDS[n]})
        raise SynthError(f"vocoder(s) {', '.join(missing)} need {', '.join(needs)} "
                         "(pip install -e '.[train]')")
    if not names:
        raise SynthError("no vocoder given")
    return list(dict.fromkeys(names))


def vocode(audio: np.ndarray, rate: int, vocoder: str, rng: np.random.Generator) -> np.ndarray:
    """A vocoded twin of one clip: float32, same length, RMS-matched to the source (scaled
    down instead if that would clip), band-limited like the source when it is narrowband.

    Raises:
        SynthError: unknown vocoder, or the vocoder failed on this clip.
    """
    if vocoder not in VOCODERS:
        raise SynthError(f"unknown vocoder '{vocoder}'; known: {', '.join(VOCODERS)}")
    source = np.asarray(audio, dtype=np.float32)
    if source.ndim != 1 or source.shape[0] < rate // 20:
        raise SynthError(f"need mono audio of at least 50 ms, got shape {source.shape}")
    narrow = is_narrowband(source, rate)
    # 8 kHz audio upsampled is vocoded at 8 kHz, as it was recorded (and as the corpus' own
    # copy-synthesis of FSDD was made): the twin has the source's bandwidth.
    work_rate = 8000 if narrow else rate
    work = resample(source, rate, work_rate) if narrow else source
    try:
        with np.errstate(over="raise", invalid="raise"):
            out = np.asarray(VOCODERS[vocoder](work, work_rate, rng), dtype=np.float64)
    except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as error:
        raise SynthError(f"{vocoder} failed: {error}") from None
    if narrow:
        out = resample(out, work_rate, rate)
    out = fit_length(out, source.shape[0])
    if not np.all(np.isfinite(out)) or np.max(np.abs(out)) > 1e3:
        raise SynthError(f"{vocoder} became unstable on this clip")
    try:
        return scale_to_rms(out, rms(source))
    except ValueError:  # silent output
        raise SynthError(f"{vocoder} produced silence") from None


@dataclass(frozen=True)
class SynthJob:
    index: int
    path: Path
    speaker: str
    utt: str


@dataclass
class SynthResult:
    lines: list[str]
    errors: list[str]


def _twin_id(utt: str, vocoder: str) -> str:
    return f"{utt}_{vocoder}"


def _synth_one(job: SynthJob, vocoders: Sequence[str], audio_dir: Path, rate: int,
               seed: int) -> SynthResult:
    import soundfile as sf

    from edge_runtime.audio import load_audio
    from edge_runtime.errors import AudioError

    try:
        audio = load_audio(job.path, rate)
    except AudioError as error:
        return SynthResult([], [str(error)])
    result = SynthResult([], [])
    for number, name in enumerate(VOCODERS):
        if name not in vocoders:
            continue
        # Seeded per clip and vocoder, so --jobs and the order of work change nothing.
        rng = np.random.default_rng([seed, job.index, number])
        twin = _twin_id(job.utt, name)
        try:
            out = vocode(audio, rate, name, rng)
        except SynthError as error:
            result.errors.append(f"{job.path}: {error}")
            continue
        target = audio_dir / f"{twin}.flac"
        with atomic_output(target) as partial:
            sf.write(partial, out, rate, subtype="PCM_16")
        result.lines.append(f"{job.speaker} {twin} - {SYSTEM_PREFIX}{name} spoof")
    return result


def _worker(args: tuple[SynthJob, tuple[str, ...], Path, int, int]) -> SynthResult:
    return _synth_one(*args)


def _utt_ids(utterances: Sequence[Utterance]) -> list[str]:
    """Protocol-safe ids from file stems; folder corpora may repeat a stem in two folders."""
    stems = ["_".join(u.path.stem.split()) or "clip" for u in utterances]
    counts = Counter(stems)
    return [stem if counts[stem] == 1 else f"{stem}-{index}" for index, stem in enumerate(stems)]


def resume_state(protocol: Path, audio_dir: Path) -> set[str]:
    """Twins already finished. Lines whose audio has gone (and leftovers of a write that was
    cut short) are dropped first, so redoing them cannot list a twin twice."""
    remove_partial_files(audio_dir)
    if not protocol.exists():
        return set()
    lines = protocol.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if len(line.split()) == 5
            and (audio_dir / f"{line.split()[1]}.flac").exists()]
    if len(kept) != len(lines):
        write_text_atomically(protocol, "".join(f"{line}\n" for line in kept))
    return {line.split()[1] for line in kept}


@dataclass
class SynthSummary:
    written: int
    skipped: int
    errors: list[str]
    protocol: Path


def synthesize_split(data_root: Path, split: str, out_root: Path, vocoders: Sequence[str],
                     limit: int = 0, jobs: int = 1, seed: int = 0, rate: int = 16000,
                     progress: bool = True) -> SynthSummary:
    """Vocoded twins of every bona fide clip of ``split`` as a corpus: ``out_root/protocols/
    <split>.txt`` (``SPEAKER UTT - synth_<vocoder> spoof``) + ``out_root/<split>/flac/UTT.flac``.

    Resumable: twins already listed in the protocol (with their file present) are skipped, and
    each finished twin is appended to the protocol at once, so an interruption loses nothing.
    """
    from host_training.datasets import load_split

    names = check_vocoders(vocoders)
    bona_fide = [u for u in load_split(data_root, split) if not u.is_spoof]
    if not bona_fide:
        raise SynthError(f"{data_root}: split '{split}' has no bona fide clips to vocode")
    if limit:
        bona_fide = bona_fide[:limit]
    audio_dir = out_root / split / "flac"
    audio_dir.mkdir(parents=True, exist_ok=True)
    protocol = out_root / "protocols" / f"{split}.txt"
    protocol.parent.mkdir(parents=True, exist_ok=True)
    done = resume_state(protocol, audio_dir)
    jobs_list = []
    skipped = 0
    for index, (utterance, utt) in enumerate(zip(bona_fide, _utt_ids(bona_fide), strict=True)):
        todo = tuple(n for n in names if _twin_id(utt, n) not in done)
        skipped += len(names) - len(todo)
        if todo:
            speaker = utterance.speaker if utterance.speaker != "-" else utt
            jobs_list.append((SynthJob(index, utterance.path, speaker, utt), todo, audio_dir,
                              rate, seed))
    written, errors = 0, []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs_list), desc=f"vocoding {split}", unit="clip", file=sys.stderr)
    with open(protocol, "a", encoding="utf-8") as handle:
        def collect(result: SynthResult) -> None:
            nonlocal written
            for line in result.lines:
                handle.write(line + "\n")
            handle.flush()
            written += len(result.lines)
            errors.extend(result.errors)
            if bar is not None:
                bar.update(1)

        if jobs <= 1:
            for job in jobs_list:
                collect(_worker(job))
        else:
            import multiprocessing

            # One BLAS thread per worker: the processes are the parallelism.
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            with multiprocessing.get_context("spawn").Pool(jobs) as pool:
                for result in pool.imap_unordered(_worker, jobs_list, chunksize=1):
                    collect(result)
    if bar is not None:
        bar.close()
    return SynthSummary(written, skipped, errors, protocol)
