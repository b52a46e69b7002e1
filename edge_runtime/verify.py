"""Owner verification: is this bona fide speech the enrolled owner's voice?

The combined decision (spoofing-aware speaker verification) is one rule, used by `verify`,
`enrol` and the live loop alike: no speech and spoof come first (the detector and the speech
gate), and only bona fide speech is asked whose it is. Bona fide speech whose cosine similarity
to the owner's embedding is below the owner's threshold is ``notowner``. Nothing is ever called
the owner's when the embedder could not describe the voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import AudioError
from edge_runtime.owners import Owner, OwnerStore
from edge_runtime.speaker import SpeakerEmbedder, cosine
from edge_runtime.speech_presence import BONAFIDE, NOTOWNER


@dataclass(frozen=True)
class OwnerCheck:
    similarity: float | None  # None: the embedder found no voice to describe
    threshold: float

    @property
    def is_owner(self) -> bool:
        return self.similarity is not None and self.similarity >= self.threshold


def owner_label(detector_label: str, check: OwnerCheck | None) -> str:
    """The combined decision: the detector's label, with bona fide split by the owner check."""
    if detector_label != BONAFIDE:
        return detector_label
    if check is None or not check.is_owner:
        return NOTOWNER
    return BONAFIDE


class OwnerVerifier:
    """One enrolled owner and the embedder their record was made with."""

    def __init__(self, embedder: SpeakerEmbedder, owner: Owner) -> None:
        self.embedder = embedder
        self.owner = owner

    @classmethod
    def load(cls, name: str, store_dir: str | Path | None = None,
             model_path: str | Path | None = None,
             num_threads: int | None = None) -> OwnerVerifier:
        embedder = SpeakerEmbedder(model_path, num_threads=num_threads)
        owner = OwnerStore(store_dir).load(name, model_sha256=embedder.card.sha256)
        return cls(embedder, owner)

    def check(self, audio: np.ndarray, name: str = "audio") -> OwnerCheck:
        """Similarity of ``audio`` (mono, the embedder's rate) to the owner."""
        try:
            embedding = self.embedder.embed(audio, name)
        except AudioError:
            return OwnerCheck(None, self.owner.threshold)
        return OwnerCheck(cosine(embedding, self.owner.embedding), self.owner.threshold)
