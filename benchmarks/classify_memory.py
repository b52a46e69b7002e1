#!/usr/bin/env python3
"""Peak resident memory of the `edge-detect classify` process on the demo clips, against the
60 MB target: each run a fresh process, the peak read from the kernel (wait4 rusage), median
of --runs. Pass --tree DIR to measure another checkout (an older commit) with the same
interpreter in the same call, so before and after share one machine state.

    .venv/bin/python benchmarks/classify_memory.py
    .venv/bin/python benchmarks/classify_memory.py recording-48khz.wav
    git archive OLD | tar -x -C /tmp/old && \\
        .venv/bin/python benchmarks/classify_memory.py --tree /tmp/old --tree .
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 60.0


def peak_rss_bytes(tree: Path, clips: list[Path]) -> int:
    """One `python -m edge_runtime classify` in ``tree``; its peak RSS (ru_maxrss is KiB)."""
    process = subprocess.Popen([sys.executable, "-m", "edge_runtime", "classify",
                                *map(str, clips)], cwd=tree, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"classify failed in {tree}")
    return usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path,
                        help="Checkout to measure (repeatable; default: this one).")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("clips", nargs="*", type=Path,
                        help="Files to classify (default: the demo clips, 16 kHz).")
    args = parser.parse_args()
    clips = [clip.resolve() for clip in args.clips] or sorted((REPO / "samples").glob("*.flac"))
    trees = [tree.resolve() for tree in args.tree or [REPO]]
    samples: dict[Path, list[int]] = {tree: [] for tree in trees}
    for _ in range(args.runs):  # interleaved, so load on the machine hits every tree alike
        for tree in trees:
            samples[tree].append(peak_rss_bytes(tree, clips))
    for tree, values in samples.items():
        peak = statistics.median(values)
        print(f"{tree}: classify peak RSS {peak / 1e6:.1f} MB ({peak / 2**20:.1f} MiB), median "
              f"of {len(values)}; target {TARGET_MB:.0f} MB: "
              f"{'met' if peak <= TARGET_MB * 1e6 else 'not met'}")


if __name__ == "__main__":
    main()
