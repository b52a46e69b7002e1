"""Writing generated clips as a corpus in the spoofmix layout, resumably.

``OUT/protocols/<split>.txt`` (``SPEAKER UTT - SYSTEM spoof``, ASVspoof 2019 style),
``OUT/<split>/flac/UTT.flac`` (16-bit FLAC) and ``OUT/<split>/metadata.csv`` (how each clip was
made). A clip's file is written under a temporary name and renamed, then its protocol line and
metadata row are appended and flushed, so an interruption loses at most the clip in progress;
a rerun skips every clip already listed (see ``host_training.synth.resume_state``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_runtime.audio import rms


class CorpusWriter:
    """Appends spoof clips of one split to a corpus root; ``done`` holds the finished ids."""

    def __init__(self, out_root: Path, split: str, metadata_fields: Sequence[str]) -> None:
        from host_training.synth import resume_state

        self.audio_dir = Path(out_root) / split / "flac"
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.protocol = Path(out_root) / "protocols" / f"{split}.txt"
        self.protocol.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = Path(out_root) / split / "metadata.csv"
        self.fields = ["utt_id", "speaker_id", "key", "system", *metadata_fields]
        self.done = resume_state(self.protocol, self.audio_dir)
        self._keep_finished_metadata()
        self.written = 0
        new_file = not self.metadata.exists() or self.metadata.stat().st_size == 0
        self._meta_handle = open(self.metadata, "a", encoding="utf-8", newline="")
        self._meta = csv.DictWriter(self._meta_handle, fieldnames=self.fields)
        if new_file:
            self._meta.writeheader()
        self._protocol_handle = open(self.protocol, "a", encoding="utf-8")

    def _keep_finished_metadata(self) -> None:
        """Drops metadata rows of clips the protocol no longer lists (cut short or deleted)."""
        if not self.metadata.exists():
            return
        with open(self.metadata, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        kept = [row for row in rows if row.get("utt_id") in self.done]
        if len(kept) == len(rows):
            return
        partial = self.metadata.with_name(f".{self.metadata.name}.part")
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        partial.replace(self.metadata)

    def add(self, utt: str, speaker: str, system: str, audio: np.ndarray, rate: int,
            **metadata: object) -> None:
        import soundfile as sf

        if any(len(value.split()) != 1 for value in (utt, speaker, system)):
            raise ValueError(f"protocol fields must be single words: {utt!r} {speaker!r} "
                             f"{system!r}")
        target = self.audio_dir / f"{utt}.flac"
        partial = target.with_name(f".{utt}.part.flac")
        sf.write(partial, np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")
        partial.replace(target)
        self._protocol_handle.write(f"{speaker} {utt} - {system} spoof\n")
        self._protocol_handle.flush()
        self._meta.writerow({"utt_id": utt, "speaker_id": speaker, "key": "spoof",
                             "system": system, **metadata})
        self._meta_handle.flush()
        self.done.add(utt)
        self.written += 1

    def close(self) -> None:
        self._protocol_handle.close()
        self._meta_handle.close()

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad a vocoder's output (off by a frame at most) to the source length."""
    if audio.shape[0] >= length:
        return audio[:length]
    return np.pad(audio, (0, length - audio.shape[0]))


def scale_to_rms(audio: np.ndarray, target_rms: float) -> np.ndarray:
    """``audio`` scaled to ``target_rms`` (scaled down instead where that would clip)."""
    level = rms(audio)
    if level < 1e-9:
        raise ValueError("generated audio is silent")
    out = audio.astype(np.float64) * (target_rms / level)
    peak = float(np.max(np.abs(out)))
    if peak > 0.999:
        out *= 0.999 / peak
    return out.astype(np.float32)
