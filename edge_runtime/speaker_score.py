"""Speaker scores: the cosine of two embeddings, normalised against a cohort of other voices.

A raw cosine means different things for different voices and clip lengths: some owners sit
close to many strangers, a short clip's embedding is closer to everyone. Adaptive symmetric
normalisation (AS-norm; Matejka et al. 2017) asks how far a score stands above the scores of
the most similar impostors, on both sides of the trial:

    score = 0.5 * ((s - mean_e) / std_e + (s - mean_t) / std_t)

where ``mean_e, std_e`` are the mean and standard deviation of the ``top`` highest cosines of
the enrolled owner to the cohort, ``mean_t, std_t`` the same for the test clip. The cohort is a
fixed set of unit embeddings of bona fide clips by training-split voices that are in no trial
(``speaker_cohort.npy`` beside the embedder, its sha256 on the embedder's card). On the
corpus's trials it lowers the SV-EER from 7.5 to 6.2 % (docs/owner.md). A card without a
cohort scores by plain cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.errors import ModelError

SCALE_COSINE = "cosine"
SCALE_AS_NORM = "as-norm"


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class CohortStats:
    """How close one embedding sits to its nearest impostors."""

    mean: float
    std: float


class SpeakerScorer:
    """Turns (owner embedding, clip embedding) into the score the owner's threshold is on."""

    def __init__(self, cohort: np.ndarray | None = None, top: int = 100) -> None:
        self.cohort = None if cohort is None else unit_rows(np.asarray(cohort, np.float32))
        self.top = top if self.cohort is None else min(top, self.cohort.shape[0])

    @property
    def scale(self) -> str:
        return SCALE_COSINE if self.cohort is None else SCALE_AS_NORM

    def stats(self, embedding: np.ndarray) -> CohortStats | None:
        """The owner side of AS-norm; computed once per owner, not once per decision."""
        if self.cohort is None:
            return None
        closest = np.partition(self.cohort @ embedding, -self.top)[-self.top:]
        return CohortStats(float(closest.mean()), max(float(closest.std()), 1e-6))

    def score(self, cosine: float, test: np.ndarray, owner: CohortStats | None) -> float:
        """``cosine`` (owner vs ``test``, both unit) on this scorer's scale."""
        if self.cohort is None or owner is None:
            return cosine
        test_side = self.stats(test)
        assert test_side is not None
        return 0.5 * ((cosine - owner.mean) / owner.std
                      + (cosine - test_side.mean) / test_side.std)

    @classmethod
    def from_card(cls, model_path: Path, card_extra: dict[str, Any],
                  embedding_size: int) -> SpeakerScorer:
        """The scorer the embedder's card asks for (its ``score_normalisation``), checked."""
        from edge_runtime.model import _shown, sha256_of

        spec = card_extra.get("score_normalisation")
        if spec is None:
            return cls()
        try:
            method, name, digest, top = (spec["method"], spec["cohort_file"],
                                         spec["cohort_sha256"], int(spec["top"]))
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{_shown(model_path)}: its card's score_normalisation needs "
                             "method, cohort_file, cohort_sha256 and top") from None
        if method != SCALE_AS_NORM or top < 2:
            raise ModelError(f"{_shown(model_path)}: unknown score normalisation {method!r} "
                             f"(top {top}); this kit knows {SCALE_AS_NORM!r}")
        path = model_path.parent / Path(str(name)).name
        try:
            if sha256_of(path) != digest:
                raise ModelError(f"{_shown(path)}: sha256 does not match the speaker card; "
                                 "the cohort was changed or swapped")
            cohort = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ModelError(f"{_shown(path)}: cannot read the speaker cohort "
                             f"({getattr(error, 'strerror', None) or error})") from None
        if cohort.ndim != 2 or cohort.shape[1] != embedding_size or cohort.shape[0] < top:
            raise ModelError(f"{_shown(path)}: cohort of shape {cohort.shape}; expected "
                             f"(at least {top}, {embedding_size})")
        if not np.all(np.isfinite(cohort)):
            raise ModelError(f"{_shown(path)}: the cohort holds non-finite numbers")
        return cls(cohort.astype(np.float32), top)
