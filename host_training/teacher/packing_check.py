"""How far cheaper layouts move a clip's embedding from Whisper's own (the clip alone at the
start of a zero-padded 30-s window): cosine per clip and CPU seconds per clip, for the unpadded
layout the teacher uses and for packing several clips into one window."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from host_training.datasets import load_split
from host_training.teacher.encoder import (
    Encoder,
    embed_clip,
    embed_in_window,
    embed_packed,
    trimmed,
)
from host_training.teacher.mel import SAMPLE_RATE
from host_training.waveforms import load_clip


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _summary(cosines: np.ndarray, seconds: float, clips: int) -> dict[str, float]:
    return {"cosine_mean": float(cosines.mean()), "cosine_min": float(cosines.min()),
            "cosine_p05": float(np.percentile(cosines, 5)),
            "cpu_seconds_per_clip": seconds / clips}


def packing_check(root: Path, split: str, clips: int, seed: int = 0) -> dict[str, Any]:
    utterances = load_split(root, split)
    chosen = np.random.default_rng(seed).choice(len(utterances), min(clips, len(utterances)),
                                                replace=False)
    audio = [trimmed(load_clip(utterances[i].path, SAMPLE_RATE)) for i in sorted(chosen)]
    encoder = Encoder()
    timed: dict[str, tuple[np.ndarray, float]] = {}
    for name, run in [("alone_30s", lambda: np.stack([embed_in_window(encoder, a) for a in audio])),
                      ("unpadded", lambda: np.stack([embed_clip(encoder, a) for a in audio])),
                      ("packed", lambda: embed_packed(encoder, audio))]:
        started = time.process_time()
        vectors = run()
        timed[name] = (vectors, time.process_time() - started)
    reference, reference_seconds = timed["alone_30s"]
    return {"clips": len(audio), "audio_seconds": sum(len(a) for a in audio) / SAMPLE_RATE,
            "alone_30s_cpu_seconds_per_clip": reference_seconds / len(audio),
            **{name: _summary(_cosines(reference, vectors), seconds, len(audio))
               for name, (vectors, seconds) in timed.items() if name != "alone_30s"}}
