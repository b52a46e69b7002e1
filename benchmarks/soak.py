#!/usr/bin/env python3
"""Soak: stream simulated hours of audio through the live detector as fast as possible and
record resident memory every simulated hour. Memory must stay flat: after the first hour, RSS
may not grow by 1 MB or more.

The detector is the one `edge-detect run` uses (edge_runtime.stream.LiveDetector with its
defaults: energy gate, 0.5 s hop, mean smoothing, 10 s maximum utterance) on the shipped int8
model, fed in mic-sized chunks. The audio is a one-minute synthetic speech-like loop (voiced
harmonics with syllable rhythm, a little noise, and a 2 s pause every 30 s so utterances also
close on silence), with fresh noise on every pass so no two minutes are identical.

    .venv/bin/python benchmarks/soak.py                 # 24 simulated hours
    .venv/bin/python benchmarks/soak.py --hours 3       # what fits; the report says how many

Writes benchmarks/results/soak-<host>.json. Nothing is extrapolated: the report covers the
hours that were actually streamed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_runtime.model import SpoofModel, default_model_path, sha256_of  # noqa: E402
from edge_runtime.stream import LiveDetector  # noqa: E402

GROWTH_LIMIT_KIB = 1024
SECONDS_PER_HOUR = 3600


def vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def speech_loop(rate: int, seconds: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * rate) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    envelope[(t % 30.0) >= 28.0] = 0.0  # a pause long enough to end an utterance
    signal = 0.2 * voiced * envelope + 0.005 * rng.standard_normal(t.shape)
    return signal.astype(np.float32)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours to stream")
    parser.add_argument("--chunk-samples", type=int, default=1024,
                        help="samples per push, as a microphone read delivers them")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="interpreter threads (1: the machine is shared)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default: benchmarks/results/soak-<host>.json)")
    args = parser.parse_args()

    host = socket.gethostname()
    out = args.out or REPO / "benchmarks" / "results" / f"soak-{host}.json"
    rss_start = vm_rss_kib()
    model = SpoofModel(args.model, num_threads=args.threads)
    config = model.frontend_config
    rate = config.sample_rate
    detector = LiveDetector(model, config, model.threshold)
    loop = speech_loop(rate)
    noise = np.random.default_rng(1)
    chunk = args.chunk_samples
    total_chunks = int(args.hours * SECONDS_PER_HOUR * rate) // chunk
    chunks_per_hour = SECONDS_PER_HOUR * rate / chunk

    hours: list[dict[str, float | int]] = []
    events = decisions = 0
    rss_loaded = vm_rss_kib()
    began = time.perf_counter()
    position = 0
    next_hour = 1
    fresh = loop.copy()
    for index in range(total_chunks):
        if position + chunk > fresh.shape[0]:
            position = 0
            fresh = loop + (0.002 * noise.standard_normal(loop.shape[0])).astype(np.float32)
        for event in detector.push(fresh[position : position + chunk]):
            events += 1
            decisions += event.decision is not None
        position += chunk
        if (index + 1) >= next_hour * chunks_per_hour:
            elapsed = time.perf_counter() - began
            hours.append({"hour": next_hour, "rss_kib": vm_rss_kib(),
                          "wall_seconds": round(elapsed, 1),
                          "windows_scored": detector.windows_scored,
                          "decisions": decisions})
            print(f"hour {next_hour:>2}: RSS {hours[-1]['rss_kib'] / 1024:.2f} MiB, "
                  f"{detector.windows_scored} windows, {decisions} decisions, "
                  f"{elapsed:.0f} s wall", flush=True)
            next_hour += 1
    for event in detector.flush():
        decisions += event.decision is not None
    wall = time.perf_counter() - began
    simulated = total_chunks * chunk / rate

    after_first = [h["rss_kib"] for h in hours]
    growth = (max(after_first) - after_first[0]) if len(after_first) >= 2 else None
    report = {
        "benchmark": "soak",
        "host": host,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "model": str(args.model or default_model_path()),
        "model_sha256": sha256_of(model.path),
        "interpreter": model.interpreter_name,
        "threads": args.threads,
        "detector": {"class": "edge_runtime.stream.LiveDetector", "hop_seconds": 0.5,
                     "gate": detector.gate.kind, "chunk_samples": chunk},
        "simulated_hours": round(simulated / SECONDS_PER_HOUR, 4),
        "simulated_hours_requested": args.hours,
        "wall_seconds": round(wall, 1),
        "real_time_factor": round(wall / simulated, 5),
        "windows_scored": detector.windows_scored,
        "events": events,
        "decisions": decisions,
        "rss_kib": {"process_start": rss_start, "model_loaded": rss_loaded,
                    "per_hour": hours},
        "growth_after_first_hour_kib": growth,
        "growth_limit_kib": GROWTH_LIMIT_KIB,
        "flat": None if growth is None else growth < GROWTH_LIMIT_KIB,
        "load_average": os.getloadavg(),
        "note": "measured figures only; nothing is extrapolated beyond simulated_hours",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['simulated_hours']} simulated hours in {wall:.0f} s; growth after the "
          f"first hour: {growth} KiB (limit {GROWTH_LIMIT_KIB}); report: {out}")
    if growth is None:
        return 0
    return 0 if growth < GROWTH_LIMIT_KIB else 1


if __name__ == "__main__":
    sys.exit(main())
