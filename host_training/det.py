"""DET curves (miss vs false alarm on normal-deviate axes), the standard ASVspoof plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.metrics import det_points

TICKS = (0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9)


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_path: Path,
             title: str) -> None:
    """One line per entry of ``curves`` (name -> (bona fide scores, spoof scores))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    limit = (0.0005, 0.95)
    figure, axes = plt.subplots(figsize=(6, 6))
    for name, (bonafide, spoof) in curves.items():
        frr, far = det_points(bonafide, spoof)
        frr = np.clip(frr, *limit)
        far = np.clip(far, *limit)
        axes.plot(norm.ppf(far), norm.ppf(frr), label=name, linewidth=1.5)
    ticks = norm.ppf(TICKS)
    labels = [f"{t * 100:g}" for t in TICKS]
    axes.set_xticks(ticks, labels)
    axes.set_yticks(ticks, labels)
    axes.set_xlim(norm.ppf(limit))
    axes.set_ylim(norm.ppf(limit))
    axes.plot(norm.ppf(limit), norm.ppf(limit), color="grey", linewidth=0.5, linestyle=":")
    axes.set_xlabel("spoof accepted (false alarm) %")
    axes.set_ylabel("bona fide rejected (miss) %")
    axes.set_title(title)
    axes.grid(True, linewidth=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
