"""Mean and spread over seeds of `edge-train evaluate --json` results: one run is not a result.

Three seeds of one recipe scattered 21-34 % on spoofmix eval; a difference between two recipes
means something only against that spread, so comparisons are made on these summaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()),
            "std": float(array.std(ddof=1)) if array.size > 1 else 0.0}


def summarize_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split present in every result: pooled EER, minDCF, bona fide rejected at the card's
    threshold, and each attack's EER, as mean / min / max / std over the results."""
    splits = set.intersection(*(set(r) for r in results)) if results else set()
    summary: dict[str, Any] = {}
    for split in sorted(splits):
        runs = [r[split] for r in results]
        attacks = sorted(set.intersection(*(set(r["per_attack"]) for r in runs)))
        summary[split] = {
            "seeds": len(runs),
            "eer": _spread([r["eer"] for r in runs]),
            "min_dcf": _spread([r["min_dcf"] for r in runs]),
            "bonafide_rejected": _spread([r["bonafide_rejected"] for r in runs]),
            "per_attack_eer": {a: _spread([r["per_attack"][a]["eer"] for r in runs])
                               for a in attacks},
        }
        if all("float" in r for r in runs):
            summary[split]["float_eer"] = _spread([r["float"]["eer"] for r in runs])
    return summary


def load_results(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in paths]


def _cell(stats: dict[str, float]) -> str:
    return (f"{stats['mean'] * 100:.1f} ± {stats['std'] * 100:.1f} "
            f"({stats['min'] * 100:.1f}-{stats['max'] * 100:.1f})")


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| split | seeds | EER % mean ± sd (min-max) | minDCF | bona fide rejected % |",
             "|---|---|---|---|---|"]
    for split, s in summary.items():
        lines.append(f"| {split} | {s['seeds']} | {_cell(s['eer'])} | "
                     f"{s['min_dcf']['mean']:.3f} | {s['bonafide_rejected']['mean'] * 100:.1f} |")
    for split, s in summary.items():
        lines += ["", f"**{split}** per attack, EER % mean ± sd (min-max)", "",
                  "| attack | EER % |", "|---|---|"]
        lines += [f"| {a} | {_cell(v)} |" for a, v in s["per_attack_eer"].items()]
    return "\n".join(lines)
