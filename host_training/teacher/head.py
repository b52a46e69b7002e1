"""The teacher's head: L2-regularised logistic regression on frozen, standardised embeddings.

Training weights make each class half the loss and cap each group's share (a spoofing system or
a bona fide source, sampling.group_of): a group of n clips weighs min(n, cap) clips, so Mimic 3's
331 clips or FSDD's 1,200 digits count like `cap` clips of a rarer system, not hundreds.
The fit is deterministic (convex, L-BFGS), so one run stands for any seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from edge_runtime.atomic import atomic_output
from host_training.datasets import Utterance
from host_training.sampling import group_of

DEFAULT_L2 = 1.0
DEFAULT_GROUP_CAP = 30
N_FOLDS = 5
FOLD_GROUPINGS = ("source", "speaker")  # what holds a bona fide clip's fold together


def fold_group(utterance: Utterance, bonafide_by: str = "source") -> str:
    """Spoofs go by system; bona fide clips by source (FSDD, LJ, EXT_<owner>, ...) or, finer,
    by speaker (FSDD_nicolas), so a held-out fold still has the source's channel in training."""
    if utterance.is_spoof or bonafide_by == "source":
        return group_of(utterance)
    return f"bonafide-speaker:{utterance.speaker}"


def training_weights(utterances: list[Utterance], group_cap: int) -> np.ndarray:
    """Per-clip loss weights: capped group share, then each class summing to 0.5."""
    groups = [group_of(u) for u in utterances]
    sizes = Counter(groups)
    weights = np.array([min(sizes[g], group_cap) / sizes[g] if group_cap else 1.0
                        for g in groups])
    labels = np.array([u.is_spoof for u in utterances])
    for label in (False, True):
        weights[labels == label] *= 0.5 / weights[labels == label].sum()
    return weights


@dataclass
class Head:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return ((embeddings - self.mean) / self.scale) @ self.coef + self.bias

    def spoof_probability(self, embeddings: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(embeddings)))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:
            np.savez(temporary, mean=self.mean, scale=self.scale, coef=self.coef,
                     bias=np.array(self.bias))

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path) as data:
            return cls(data["mean"], data["scale"], data["coef"], float(data["bias"]))


def fit_head(embeddings: np.ndarray, labels: np.ndarray, weights: np.ndarray,
             l2: float = DEFAULT_L2) -> Head:
    """Weighted logistic regression; ``l2`` is the penalty on the standardised coefficients
    relative to the (unit-sum) data term, scaled by 1/len so it means the same at any size."""
    mean = embeddings.mean(axis=0)
    scale = embeddings.std(axis=0) + 1e-6
    x = (embeddings - mean) / scale
    y = labels.astype(np.float64)
    penalty = l2 / len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        # log(1 + e^z) - y z, stable for both signs
        value = np.sum(weights * (np.logaddexp(0.0, z) - y * z)) + 0.5 * penalty * w @ w
        residual = weights * (1.0 / (1.0 + np.exp(-z)) - y)
        return value, np.concatenate([x.T @ residual + penalty * w, [residual.sum()]])

    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                      options={"maxiter": 2000})
    return Head(mean, scale, result.x[:-1], float(result.x[-1]))


def group_folds(utterances: list[Utterance], n_folds: int = N_FOLDS,
                bonafide_by: str = "source") -> np.ndarray:
    """Fold index per clip; a group (see fold_group) lies in one fold only.
    Groups go largest first to the fold with the fewest clips of the same class."""
    groups = [fold_group(u, bonafide_by) for u in utterances]
    sizes = Counter(groups)
    load = {cls: np.zeros(n_folds) for cls in ("spoof", "bonafide")}
    fold_of: dict[str, int] = {}
    for group, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        cls = "spoof" if group.startswith("spoof:") else "bonafide"
        fold = int(np.argmin(load[cls]))
        fold_of[group] = fold
        load[cls][fold] += size
    return np.array([fold_of[g] for g in groups])


def out_of_fold_scores(utterances: list[Utterance], embeddings: np.ndarray, group_cap: int,
                       l2: float, n_folds: int = N_FOLDS, bonafide_by: str = "source",
                       ) -> np.ndarray:
    """Spoof probability of every clip from a head that never saw the clip's group."""
    folds = group_folds(utterances, n_folds, bonafide_by)
    labels = np.array([u.is_spoof for u in utterances])
    scores = np.zeros(len(utterances))
    for fold in range(n_folds):
        held = folds == fold
        kept = [u for u, h in zip(utterances, held, strict=True) if not h]
        head = fit_head(embeddings[~held], labels[~held], training_weights(kept, group_cap), l2)
        scores[held] = head.spoof_probability(embeddings[held])
    return scores
