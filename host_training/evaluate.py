"""Evaluation of the int8 model as the board runs it: EER pooled and per attack."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.frontend import Frontend
from edge_runtime.metrics import equal_error_rate, min_dcf
from edge_runtime.model import SpoofModel, card_path_for
from host_training.datasets import Utterance, load_split
from host_training.features import clip_scores, clip_windows
from host_training.waveforms import load_waveforms


def split_metrics(utterances: list[Utterance], scores: np.ndarray,
                  threshold: float) -> dict[str, Any]:
    """Pooled EER, minDCF, accuracy at ``threshold`` and per-attack EER (each attack against all
    bona fide clips of the split, as ASVspoof reports it)."""
    labels = np.array([u.is_spoof for u in utterances], dtype=bool)
    bona, spoof = scores[~labels], scores[labels]
    rates = equal_error_rate(bona, spoof)
    per_attack: dict[str, dict[str, float]] = {}
    by_system: dict[str, list[float]] = defaultdict(list)
    for utterance, score in zip(utterances, scores, strict=True):
        if utterance.is_spoof:
            by_system[utterance.system].append(float(score))
    for system, values in sorted(by_system.items()):
        attack = np.asarray(values)
        per_attack[system] = {"files": len(values), "eer": equal_error_rate(bona, attack).eer,
                              "missed_at_threshold": float(np.mean(attack < threshold))}
    predicted = scores >= threshold
    return {
        "files": len(utterances), "bonafide": int((~labels).sum()), "spoof": int(labels.sum()),
        "eer": rates.eer, "eer_threshold": rates.threshold, "min_dcf": min_dcf(bona, spoof),
        "accuracy": float(np.mean(predicted == labels)),
        "bonafide_rejected": float(np.mean(predicted[~labels])),
        "spoof_accepted": float(np.mean(~predicted[labels])),
        "per_attack": per_attack,
    }


def score_split(model: SpoofModel, waves: list[np.ndarray]) -> np.ndarray:
    features, owners = clip_windows(waves, Frontend(model.frontend_config))
    return clip_scores(model.score_windows(features), owners, len(waves))


def evaluate_model(model_path: Path | None, data_root: Path, splits: list[str],
                   cache_dir: Path | None = None) -> dict[str, Any]:
    model = SpoofModel(model_path)
    results: dict[str, Any] = {}
    for split in splits:
        utterances = load_split(data_root, split)
        waves = load_waveforms(utterances, model.frontend_config.sample_rate, cache_dir)
        scores = score_split(model, waves)
        results[split] = split_metrics(utterances, scores, model.threshold)
    return results


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| split | files | EER % | minDCF | accuracy % | bona fide rejected % | "
             "spoof accepted % |", "|---|---|---|---|---|---|---|"]
    for split, r in results.items():
        lines.append(f"| {split} | {r['files']} | {r['eer'] * 100:.2f} | {r['min_dcf']:.3f} | "
                     f"{r['accuracy'] * 100:.1f} | {r['bonafide_rejected'] * 100:.1f} | "
                     f"{r['spoof_accepted'] * 100:.1f} |")
    for split, r in results.items():
        lines += ["", f"**{split}** per attack (EER against all bona fide of the split)", "",
                  "| attack | files | EER % | missed at threshold % |", "|---|---|---|---|"]
        for system, a in r["per_attack"].items():
            lines.append(f"| {system} | {a['files']} | {a['eer'] * 100:.2f} | "
                         f"{a['missed_at_threshold'] * 100:.1f} |")
    return "\n".join(lines)


def record_on_card(model_path: Path, results: dict[str, Any]) -> None:
    """Stores the int8 metrics on the model card (the sha256 of the .tflite is unchanged)."""
    card_path = card_path_for(model_path)
    card = json.loads(card_path.read_text())
    card.setdefault("metrics", {}).update(results)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
