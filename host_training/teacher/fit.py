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
from host_training.teacher.layer_cache import (
    N_LAYERS,
    layer_split,
    load_dynamics,
    load_pooled,
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


Layers = tuple[int, ...] | None  # encoder layers whose pooled states are joined; None: encode()
# The layer sets `compare-layers` fits by default: each layer alone, neighbours, all.
DEFAULT_LAYER_SETS = ("0", "1", "2", "3", "4", "1+2", "2+3", "3+4", "1+2+3", "0+1+2+3+4")
LAYERS_COMPARISON_FILE = "layers_comparison.json"


def parse_layers(text: str) -> tuple[int, ...]:
    """'2' or '1+2' -> (2,) or (1, 2); layers run 0 (front end) .. N_LAYERS - 1."""
    try:
        layers = tuple(int(part) for part in text.split("+"))
    except ValueError:
        raise ValueError(f"{text!r}: expected layer numbers joined by '+', e.g. 2 or 1+2") from None
    if not layers or any(not 0 <= k < N_LAYERS for k in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"{text!r}: layers are distinct numbers 0..{N_LAYERS - 1}")
    return layers


def results_dir(cache_dir: Path, layers: Layers, dynamics: bool = False) -> Path:
    """Where a head, its metrics and scores live: the cache itself for the original teacher
    (ctranslate2's final layer), a folder per layer set otherwise ("-dyn" with dynamics)."""
    if layers is None:
        return Path(cache_dir)
    return Path(cache_dir) / (f"layers-{'+'.join(str(k) for k in layers)}"
                              + ("-dyn" if dynamics else ""))


def load_sets(pairs: tuple[tuple[str, str], ...], cache_dir: Path,
              layers: Layers = None, dynamics: bool = False) -> Labelled:
    """Embeddings of the pairs' clips: encode()'s (layers None), or the layers' pooled mean
    and std, followed with ``dynamics`` by their frame-change std (load_dynamics)."""
    if dynamics and layers is None:
        raise ValueError("dynamics need a layer set (--layers)")
    utterances: list[Utterance] = []
    parts = []
    for root, split in pairs:
        if layers is None:
            found, vectors = embed_split(Path(root), split, cache_dir)
        else:
            found, folder = layer_split(Path(root), split, cache_dir)
            vectors = load_pooled(folder, len(found), layers)
            if dynamics:
                vectors = np.hstack([vectors, load_dynamics(folder, len(found), layers)])
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
                   eval_pairs: tuple[tuple[str, str], ...] = DEFAULT_EVAL,
                   layers: Layers = None, dynamics: bool = False) -> dict[str, Any]:
    out_dir = results_dir(cache_dir, layers, dynamics)
    train = load_sets(train_pairs, cache_dir, layers, dynamics)
    dev = load_sets((dev_pair,), cache_dir, layers, dynamics)
    best, trials = select(train, dev)
    head = fit_head(train.embeddings, train.labels,
                    training_weights(train.utterances, int(best["group_cap"])), best["l2"])
    head.save(out_dir / HEAD_FILE)
    named = [(_name(dev_pair), dev)] + [(_name(p), load_sets((p,), cache_dir, layers, dynamics))
                                        for p in eval_pairs]
    return write_report(out_dir, {"layers": None if layers is None else list(layers),
                                  "dynamics": dynamics, "chosen": best, "grid": trials},
                        [(name, data.utterances, head.spoof_probability(data.embeddings))
                         for name, data in named])


def write_report(out_dir: Path, header: dict[str, Any],
                 scored: list[tuple[str, list[Utterance], np.ndarray]]) -> dict[str, Any]:
    """Metrics of every scored split at the first (dev) split's EER threshold, written to
    METRICS_FILE, and every clip's score to RECORD_SCORES_FILE; returns the metrics."""
    _, dev_utterances, dev_scores = scored[0]
    dev_labels = np.array([u.is_spoof for u in dev_utterances])
    threshold = equal_error_rate(dev_scores[~dev_labels], dev_scores[dev_labels]).threshold
    report: dict[str, Any] = {**header, "threshold_from_dev": threshold, "splits": {}}
    record: dict[str, float] = {}
    for name, utterances, scores in scored:
        report["splits"][name] = split_metrics(utterances, scores, threshold)
        record.update({path_key(u.path): float(s)
                       for u, s in zip(utterances, scores, strict=True)})
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out_dir / METRICS_FILE, json.dumps(report, indent=1) + "\n")
    write_text_atomically(out_dir / RECORD_SCORES_FILE, json.dumps(record) + "\n")
    return report


def soft_scores(cache_dir: Path = DEFAULT_CACHE,
                train_pairs: tuple[tuple[str, str], ...] = DEFAULT_TRAIN,
                extra_pairs: tuple[tuple[str, str], ...] = (),
                bonafide_by: str = "source", layers: Layers = None,
                dynamics: bool = False) -> tuple[dict[str, float], float]:
    """Out-of-fold spoof probability of every training clip (5 folds grouped by system /
    bona fide source or speaker), and the full head's probability for clips of
    ``extra_pairs``; with the out-of-fold EER over the training clips."""
    out_dir = results_dir(cache_dir, layers, dynamics)
    report = json.loads((out_dir / METRICS_FILE).read_text())
    best = report["chosen"]
    train = load_sets(train_pairs, cache_dir, layers, dynamics)
    scores = out_of_fold_scores(train.utterances, train.embeddings, int(best["group_cap"]),
                                best["l2"], bonafide_by=bonafide_by)
    table = {path_key(u.path): float(s) for u, s in zip(train.utterances, scores, strict=True)}
    if extra_pairs:
        head = Head.load(out_dir / HEAD_FILE)
        extra = load_sets(extra_pairs, cache_dir, layers, dynamics)
        table.update({path_key(u.path): float(s) for u, s in zip(
            extra.utterances, head.spoof_probability(extra.embeddings), strict=True)})
    return table, _eer(train, scores)


def compare_layers(cache_dir: Path = DEFAULT_CACHE,
                   layer_sets: tuple[tuple[int, ...], ...] = tuple(
                       parse_layers(t) for t in DEFAULT_LAYER_SETS),
                   train_pairs: tuple[tuple[str, str], ...] = DEFAULT_TRAIN,
                   dev_pair: tuple[str, str] = DEFAULT_DEV,
                   eval_pairs: tuple[tuple[str, str], ...] = DEFAULT_EVAL,
                   dynamics: bool = False) -> list[dict[str, Any]]:
    """fit_and_report for each layer set (each chooses its own l2 and cap on dev); one row
    per set with the pooled EER of every split, also written to LAYERS_COMPARISON_FILE."""
    rows = []
    for layers in layer_sets:
        report = fit_and_report(cache_dir, train_pairs, dev_pair, eval_pairs, layers, dynamics)
        rows.append({"layers": "+".join(str(k) for k in layers), "dynamics": dynamics,
                     **report["chosen"],
                     **{f"{name} eer": m["eer"] for name, m in report["splits"].items()}})
    write_text_atomically(Path(cache_dir) / LAYERS_COMPARISON_FILE,
                          json.dumps(rows, indent=1) + "\n")
    return rows


def frames_dir(cache_dir: Path, config: Any) -> Path:
    layers = "+".join(str(k) for k in config.layers)
    return Path(cache_dir) / f"frames-{layers}-seed{config.seed}"


def fit_frames(config: Any, cache_dir: Path = DEFAULT_CACHE,
               train_pairs: tuple[tuple[str, str], ...] = DEFAULT_TRAIN,
               dev_pair: tuple[str, str] = DEFAULT_DEV,
               eval_pairs: tuple[tuple[str, str], ...] = DEFAULT_EVAL,
               log=print) -> dict[str, Any]:
    """Train the frame-sequence head (frame_head) with its epoch chosen on dev; report like
    fit_and_report, into frames_dir."""
    from host_training.teacher import frame_head

    train, train_clips = frame_head.split_frames(train_pairs, cache_dir, config.layers)
    dev, dev_clips = frame_head.split_frames((dev_pair,), cache_dir, config.layers)
    model, norm, history = frame_head.train_frame_head(train, train_clips, dev, dev_clips,
                                                       config, log)
    del train_clips
    out_dir = frames_dir(cache_dir, config)
    frame_head.save_frame_head(out_dir, model, norm, config)
    scored = [(_name(dev_pair), dev, frame_head.score_clips(model, dev_clips, norm))]
    for pair in eval_pairs:
        utterances, clips = frame_head.split_frames((pair,), cache_dir, config.layers)
        scored.append((_name(pair), utterances, frame_head.score_clips(model, clips, norm)))
    best = min(history, key=lambda h: h["dev_eer"])
    return write_report(out_dir, {"head": "frames", "layers": list(config.layers),
                                  "chosen": {"epoch": best["epoch"], "seed": config.seed},
                                  "history": history}, scored)
