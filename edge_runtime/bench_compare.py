"""Bench reports of several devices side by side: one markdown table, and a PNG (matplotlib,
host side, imported only for the plot)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def report_label(report: dict[str, Any]) -> str:
    """Short name of a report for tables and file names: host-arch."""
    device = report.get("device", {})
    return f"{device.get('hostname', '?')}-{device.get('arch', '?')}"


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def compare_rows(reports: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for report in reports:
        device, latency, cold = report["device"], report["latency_ms"], report["cold_start"]
        rows.append({
            "device": report_label(report),
            "cpu": f"{device.get('cpu_model') or '?'} x{device.get('cores') or '?'}",
            "board": device.get("board") or "-",
            "threads": report["settings"]["threads"],
            "frontend_ms": latency["frontend"]["p50"],
            "invoke_ms": latency["invoke"]["p50"],
            "invoke_p99_ms": latency["invoke"]["p99"],
            "end_to_end_ms": latency["end_to_end"]["p50"],
            "stream_rtf": report["stream"]["rtf"],
            "stream_rtf_cpu": report["stream"]["rtf_cpu"],
            "cold_start_s": cold["first_score_s"]["p50"] if cold else None,
            "peak_rss_mb": report["memory"]["peak_rss_bytes"] / 1e6,
            "gmac_per_s": (report["compute"]["achieved_macs_per_s"] or 0) / 1e9,
            "model": report["model"]["sha256"][:12],
            "note": report.get("note") or "",
        })
    return rows


def compare_table(reports: Sequence[dict[str, Any]]) -> str:
    """One markdown table, one row per report (p50 unless marked)."""
    header = ("| device | CPU | board | threads | front end ms | invoke ms | invoke p99 ms "
              "| end to end ms | stream RTF | RTF (CPU) | cold start s | peak RSS MB | GMAC/s "
              "| model |")
    lines = [header, "|" + "|".join(["---"] * (header.count("|") - 1)) + "|"]
    notes = []
    for row in compare_rows(reports):
        mark = ""
        if row["note"]:
            notes.append(row["note"])
            mark = f" [{len(notes)}]"
        lines.append(
            f"| {row['device']}{mark} | {row['cpu']} | {row['board']} | "
            f"{row['threads'] if row['threads'] is not None else 'default'} | "
            f"{_fmt(row['frontend_ms'])} | {_fmt(row['invoke_ms'])} | "
            f"{_fmt(row['invoke_p99_ms'])} | {_fmt(row['end_to_end_ms'])} | "
            f"{_fmt(row['stream_rtf'], 4)} | {_fmt(row['stream_rtf_cpu'], 4)} | "
            f"{_fmt(row['cold_start_s'])} | "
            f"{_fmt(row['peak_rss_mb'], 1)} | {_fmt(row['gmac_per_s'], 1)} | "
            f"`{row['model']}` |")
    lines += [f"\n[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)


def plot_reports(reports: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Bar chart of per-window p50 latency (front end, invoke) and stream RTF per device."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = compare_rows(reports)
    labels = [r["device"] + (" *" if r["note"] else "") for r in rows]
    x = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(rows) + 4), 4.5))
    width = 0.27
    for offset, key, name in ((-width, "frontend_ms", "front end"), (0, "invoke_ms", "invoke"),
                              (width, "end_to_end_ms", "end to end")):
        left.bar(x + offset, [r[key] for r in rows], width, label=name)
    left.set_xticks(x, labels, rotation=20, ha="right")
    left.set_ylabel("ms per 4 s window (p50)")
    left.set_yscale("log")
    left.legend(loc="best")
    left.set_title("latency per window")
    right.bar(x - 0.15, [r["stream_rtf"] for r in rows], 0.3, label="wall clock")
    right.bar(x + 0.15, [r["stream_rtf_cpu"] for r in rows], 0.3, label="CPU time")
    right.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="real time")
    right.set_yscale("log")
    right.legend(loc="best")
    right.set_xticks(x, labels, rotation=20, ha="right")
    right.set_ylabel("processing time / audio time")
    right.set_title("streaming real-time factor")
    if any(r["note"] for r in rows):
        fig.text(0.01, 0.01, "* see the report's note (e.g. emulated: not representative)",
                 fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
