"""Owner verification: is this bona fide speech the enrolled owner's voice?

The combined decision (spoofing-aware speaker verification) is one rule, used by `verify`,
`enrol` and the live loop alike: no speech and spoof come first (the detector and the speech
gate), and only bona fide speech is asked whose it is. Bona fide speech whose speaker score
(``edge_runtime.speaker_score``: the cosine to the owner's embedding, normalised against a
cohort of other voices) is below the owner's threshold is ``notowner``. Nothing is ever called
the owner's when the embedder could not describe the voice.

With an owner, "spoof" is decided at the owner spoof threshold that the embedder's card holds
for the detector in use (its ``sasv`` block, calibrated on the SASV trials: the speaker check
already turns strangers away, so the detector no longer has to reject a fifth of the owner's
own clips to stop clones). Without that block (another detector) the detector's own threshold
holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.errors import AudioError
from edge_runtime.owners import Owner, OwnerStore
from edge_runtime.speaker import SpeakerEmbedder, cosine
from edge_runtime.speech_presence import BONAFIDE, NOTOWNER, SPOOF


@dataclass(frozen=True)
class OwnerCheck:
    similarity: float | None  # cosine to the owner; None: the embedder found no voice
    threshold: float  # on the scale of ``score``
    score: float | None = None  # the speaker score (default: the similarity itself)

    @property
    def speaker_score(self) -> float | None:
        return self.similarity if self.score is None else self.score

    @property
    def is_owner(self) -> bool:
        return self.speaker_score is not None and self.speaker_score >= self.threshold


def owner_label(detector_label: str, check: OwnerCheck | None,
                spoof_score: float | None = None,
                spoof_threshold: float | None = None) -> str:
    """The combined decision: the detector's label, with bona fide split by the owner check.

    With ``spoof_threshold`` (the owner spoof threshold, ``OwnerVerifier.spoof_threshold``),
    the owner's voice passes when ``spoof_score`` is below it, whatever the detector's own
    threshold said; anything the detector called spoof that is not the owner's stays spoof, and
    a spoof score at or above it is spoof. No speech stays no speech.
    """
    if detector_label not in (BONAFIDE, SPOOF):
        return detector_label
    if spoof_threshold is not None and spoof_score is not None:
        spoof = detector_label == SPOOF or spoof_score >= spoof_threshold
        spoof_for_owner = spoof_score >= spoof_threshold
    else:
        spoof = spoof_for_owner = detector_label == SPOOF
    if check is not None and check.is_owner and not spoof_for_owner:
        return BONAFIDE
    return SPOOF if spoof else NOTOWNER


class OwnerVerifier:
    """One enrolled owner and the embedder their record was made with."""

    def __init__(self, embedder: SpeakerEmbedder, owner: Owner,
                 spoof_threshold: float | None = None) -> None:
        self.embedder = embedder
        self.owner = owner
        # None: the detector's own threshold decides spoof (owner_label).
        self.spoof_threshold = spoof_threshold
        self._owner_stats = embedder.scorer.stats(owner.embedding)

    @classmethod
    def load(cls, name: str, store_dir: str | Path | None = None,
             model_path: str | Path | None = None, num_threads: int | None = None,
             detector_sha256: str | None = None) -> OwnerVerifier:
        """``detector_sha256``: the detector in use, whose owner spoof threshold (if the
        embedder's card calibrated one for it) owner decisions then use."""
        embedder = SpeakerEmbedder(model_path, num_threads=num_threads)
        owner = OwnerStore(store_dir).load(name, model_sha256=embedder.card.sha256,
                                           score_scale=embedder.scorer.scale)
        spoof_threshold = (None if detector_sha256 is None
                           else embedder.owner_spoof_threshold(detector_sha256))
        return cls(embedder, owner, spoof_threshold)

    def check(self, audio: np.ndarray, name: str = "audio") -> OwnerCheck:
        """How much ``audio`` (mono, the embedder's rate) sounds like the owner."""
        try:
            embedding = self.embedder.embed(audio, name)
        except AudioError:
            return OwnerCheck(None, self.owner.threshold)
        return self.check_embedding(embedding)

    def check_embedding(self, embedding: np.ndarray) -> OwnerCheck:
        similarity = cosine(embedding, self.owner.embedding)
        score = self.embedder.scorer.score(similarity, embedding, self._owner_stats)
        return OwnerCheck(similarity, self.owner.threshold, score)

    def label(self, detector_label: str, check: OwnerCheck | None,
              spoof_score: float | None) -> str:
        """``owner_label`` at this verifier's owner spoof threshold."""
        return owner_label(detector_label, check, spoof_score, self.spoof_threshold)

    def needs_check(self, detector_label: str) -> bool:
        """Whether a clip the detector labelled so can still be the owner's."""
        return detector_label == BONAFIDE or (detector_label == SPOOF
                                              and self.spoof_threshold is not None)
