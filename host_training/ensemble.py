"""Would several runs scored together beat each alone? The mean logit of several int8 models'
clip scores, against each model's own, on one split (`edge-train ensemble`).

This is a measurement, not a shipping path: the board runs one model. Seeds that make the same
mistakes gain nothing from averaging; seeds that scatter do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.model import SpoofModel
from host_training.datasets import load_split
from host_training.evaluate import score_split, split_metrics
from host_training.waveforms import load_waveforms

# Scores of exactly 0 or 1 (int8 output saturating) keep a finite logit.
PROBABILITY_FLOOR = 1e-4


def mean_logit(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The probability whose logit is the mean of the models' logits, clip by clip."""
    stacked = np.clip(np.stack([np.asarray(s, dtype=np.float64) for s in scores]),
                      PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    logits = np.log(stacked / (1.0 - stacked)).mean(axis=0)
    return 1.0 / (1.0 + np.exp(-logits))


def ensemble_split(model_paths: Sequence[Path], data_root: Path, split: str,
                   cache_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Each model's metrics and the mean-logit ensemble's on ``split`` (the ensemble's
    threshold is 0.5, its EER does not depend on it), and the ensemble's probability of every
    clip by resolved audio path: the map ``[training] teacher_scores`` reads, so a seed
    ensemble can be distilled into one model."""
    models = [SpoofModel(path) for path in model_paths]
    rates = {m.frontend_config.sample_rate for m in models}
    if len(rates) != 1:
        raise ValueError(f"the models read audio at different rates: {sorted(rates)}")
    utterances = load_split(data_root, split)
    waves = load_waveforms(utterances, rates.pop(), cache_dir)
    scores = [score_split(model, waves) for model in models]
    combined = mean_logit(scores)
    result = {
        "split": split,
        "models": [{"model": str(path), **split_metrics(utterances, s, model.threshold)}
                   for path, model, s in zip(model_paths, models, scores, strict=True)],
        "ensemble": split_metrics(utterances, combined, 0.5),
    }
    by_path = {str(u.path.resolve()): float(score)
               for u, score in zip(utterances, combined, strict=True)}
    return result, by_path


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['split']}: pooled EER of each model and of their mean logit", "",
             "| model | EER % | minDCF |", "|---|---|---|"]
    for metrics in result["models"]:
        lines.append(f"| {metrics['model']} | {metrics['eer'] * 100:.1f} | "
                     f"{metrics['min_dcf']:.3f} |")
    eers = [m["eer"] * 100 for m in result["models"]]
    ensemble = result["ensemble"]
    lines.append(f"| **mean logit of {len(eers)}** | **{ensemble['eer'] * 100:.1f}** | "
                 f"{ensemble['min_dcf']:.3f} |")
    lines += ["", f"single models: mean {np.mean(eers):.1f} %, best {min(eers):.1f} %"]
    return "\n".join(lines)
