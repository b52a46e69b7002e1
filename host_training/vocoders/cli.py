"""The `edge-train vocoder` group: train, vocode, quality.

Exit codes: 0 success, 2 usage or input error (bad folder, corpus, option).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_training.vocoders.config import FAMILIES, VocoderError, family_config
from host_training.vocoders.quality import quality_report
from host_training.vocoders.synthesis import load_vocoder, resynthesize_many, vocode_corpus
from host_training.vocoders.training import train_vocoder


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



def build_cli():
    """The click group behind `edge-train vocoder`."""
    import click

    from host_training.cli_options import cache_option, data_option, fail

    def root_of(data_root: Path | None) -> Path:
        from host_training.datasets import default_data_root

        return data_root or default_data_root()

    vocoder_option = click.option("--vocoder", "vocoder_dir", type=click.Path(path_type=Path),
                                  required=True, help="A folder written by `vocoder train`.")

    def vocoder_and_clips(vocoder_dir: Path, data_root: Path | None, split: str,
                          cache_dir: Path) -> tuple[Any, list, list[np.ndarray]]:
        """The vocoder, and the bona fide clips of a split at its rate; exit 2 if either fails."""
        try:
            vocoder = load_vocoder(vocoder_dir)
            utterances = _bonafide(root_of(data_root), split)
            return vocoder, utterances, _load(utterances, vocoder.config.sample_rate, cache_dir)
        except VocoderError as error:
            fail(str(error))

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
    @vocoder_option
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
        vocoder, utterances, waves = vocoder_and_clips(vocoder_dir, data_root, split, cache_dir)
        try:
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
    @vocoder_option
    @data_option
    @cache_option
    @click.option("--split", default="dev", show_default=True)
    @click.option("--clips", type=click.IntRange(1), default=50, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def quality(vocoder_dir: Path, data_root: Path | None, cache_dir: Path, split: str,
                clips: int, seed: int, as_json: bool) -> None:
        """Mel L1 and log-spectral distance of twins vs sources on held-out bona fide clips."""
        vocoder, _, waves = vocoder_and_clips(vocoder_dir, data_root, split, cache_dir)
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
