"""Choosing and fitting the teacher's head, its EERs, and the soft scores for distillation.

Hyper-parameters (L2 strength, group cap) are chosen on spoofmix-extra dev only; spoofmix eval
is reported, never consulted.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic import write_text_atomically
from edge_runtime.metrics import equal_error_rate
from host_training.datasets import Utterance
from host_training.evaluate import split_metrics
from host_training.teacher.embeddings import DEFAULT_CACHE, embed_split, path_key
from host_training.teacher.head import (
    Head,
    fit_head,
    out_of_fold_scores,
    training_weights,
)

DEFAULT_TRAIN = (("/work/shared/data/spoofmix", "train"), ("/work/data/extra", "train"))
DEFAULT_DEV = ("/work/data/extra", "dev")
DEFAULT_EVAL = (("/work/shared/data/spoofmix", "eval"),)
L2_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
CAP_GRID = (0, 10, 30, 100)
HEAD_FILE = "head.npz"
METRICS_FILE = "metrics.json"
TRAIN_SCORES_FILE = "train_scores.json"
RECORD_SCORES_FILE = "record_scores.json"


@dataclass
class Labelled:
    utterances: list[Utterance]
    embeddings: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.array([u.is_spoof for u in self.utterances])


def load_sets(pairs: tuple[tuple[str, str], ...], cache_dir: Path) -> Labelled:
    utterances: list[Utterance] = []
    parts = []
    for root, split in pairs:
        found, vectors = embed_split(Path(root), split, cache_dir)
        utterances += found
        parts.append(vectors)
    return Labelled(utterances, np.concatenate(parts))


def _name(pair: tuple[str, str]) -> str:
    return f"{Path(pair[0]).name}/{pair[1]}"


def _eer(data: Labelled, scores: np.ndarray) -> float:
    labels = data.labels
    return equal_error_rate(scores[~labels], scores[labels]).eer


def select(train: Labelled, dev: Labelled) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Grid over (l2, group cap) scored by pooled EER on the dev set; ties go to more L2."""
    trials = []
    for l2, cap in itertools.product(L2_GRID, CAP_GRID):
        head = fit_head(train.embeddings, train.labels,
                        training_weights(train.utterances, cap), l2)
        trials.append({"l2": l2, "group_cap": cap,
                       "dev_eer": _eer(dev, head.spoof_probability(dev.embeddings))})
    best = min(trials, key=lambda t: (round(t["dev_eer"], 4), -t["l2"]))
    return best, trials


def fit_and_report(cache_dir: Path = DEFAULT_CACHE,
                   train_pairs: tuple[tuple[str, str], ...] = DEFAULT_TRAIN,
                   dev_pair: tuple[str, str] = DEFAULT_DEV,
                   eval_pairs: tuple[tuple[str, str], ...] = DEFAULT_EVAL) -> dict[str, Any]:
    train = load_sets(train_pairs, cache_dir)
    dev = load_sets((dev_pair,), cache_dir)
    best, trials = select(train, dev)
    head = fit_head(train.embeddings, train.labels,
                    training_weights(train.utterances, int(best["group_cap"])), best["l2"])
    head.save(cache_dir / HEAD_FILE)
    dev_scores = head.spoof_probability(dev.embeddings)
    threshold = equal_error_rate(dev_scores[~dev.labels], dev_scores[dev.labels]).threshold
    report: dict[str, Any] = {"chosen": best, "grid": trials, "threshold_from_dev": threshold,
                              "splits": {}}
    record: dict[str, float] = {}
    named = [(_name(dev_pair), dev)] + [(_name(p), load_sets((p,), cache_dir)) for p in eval_pairs]
    for name, data in named:
        scores = head.spoof_probability(data.embeddings)
        report["splits"][name] = split_metrics(data.utterances, scores, threshold)
        record.update({path_key(u.path): float(s)
                       for u, s in zip(data.utterances, scores, strict=True)})
    write_text_atomically(cache_dir / METRICS_FILE, json.dumps(report, indent=1) + "\n")
    write_text_atomically(cache_dir / RECORD_SCORES_FILE, json.dumps(record) + "\n")
    return report


def soft_scores(cache_dir: Path = DEFAULT_CACHE,
                train_pairs: tuple[tuple[str, str], ...] = DEFAULT_TRAIN,
                extra_pairs: tuple[tuple[str, str], ...] = (),
                bonafide_by: str = "source") -> tuple[dict[str, float], float]:
    """Out-of-fold spoof probability of every training clip (5 folds grouped by system /
    bona fide source or speaker), and the full head's probability for clips of
    ``extra_pairs``; with the out-of-fold EER over the training clips."""
    report = json.loads((cache_dir / METRICS_FILE).read_text())
    best = report["chosen"]
    train = load_sets(train_pairs, cache_dir)
    scores = out_of_fold_scores(train.utterances, train.embeddings, int(best["group_cap"]),
                                best["l2"], bonafide_by=bonafide_by)
    table = {path_key(u.path): float(s) for u, s in zip(train.utterances, scores, strict=True)}
    if extra_pairs:
        head = Head.load(cache_dir / HEAD_FILE)
        extra = load_sets(extra_pairs, cache_dir)
        table.update({path_key(u.path): float(s) for u, s in zip(
            extra.utterances, head.spoof_probability(extra.embeddings), strict=True)})
    return table, _eer(train, scores)
