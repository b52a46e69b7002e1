"""Loading a trained vocoder, re-synthesising clips (twins), and writing a twin corpus."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output, write_text_atomically
from edge_runtime.audio import rms
from host_training.vocoders.config import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    VocoderConfig,
    VocoderError,
    peak_normalise,
)
from host_training.vocoders.networks import build_generator, log_mel, mel_filterbank
from host_training.vocoders.pitch import estimate_f0, excitation


class Vocoder:
    """A trained generator with its config; ``synthesise`` runs one padded batch."""

    def __init__(self, model, config: VocoderConfig, folder: Path | None = None) -> None:
        import tensorflow as tf

        self.model = model
        self.config = config
        self.folder = folder
        mel_matrix = mel_filterbank(config)
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
