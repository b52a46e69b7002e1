#!/usr/bin/env python3
"""Peak host memory of one training epoch against corpus size: `edge-train train` on 400 and
on 4,000 clips of a corpus (default spoofmix-extra train, every clip in the epoch, no caps),
each in a fresh process with a fresh decoded-audio cache, so decoding is measured too.

Memory is sampled every 0.2 s over the whole process tree (trainer + data workers): the sum
of proportional set sizes (PSS: pages shared between forked workers counted once), and the
largest resident set of any one process (kernel peak, wait4). Target: the two runs differ by
at most 200 MB. Writes benchmarks/results/training-memory.json.

    nice -n 10 .venv/bin/python benchmarks/training_memory.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 200.0


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one_run(clips: int, corpus: Path, workers: int, work: Path) -> dict[str, object]:
    base = tomllib.loads((REPO / "host_training" / "configs" / "default.toml").read_text())
    config = dict(base)
    config["data"] = {"root": str(corpus), "max_files": clips, "report_splits": []}
    config["training"] = {**base["training"], "epochs": 1}
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    config_path = work / f"config-{clips}.toml"
    config_path.write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-c", "from host_training.cli import main; main()", "train",
               "--config", str(config_path),
               "--out", str(work / f"run-{clips}"), "--cache", str(work / f"cache-{clips}"),
               "--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peak = {"pss": 0.0, "processes": 0}

    def sample() -> None:
        while process.poll() is None:
            pids = _tree(process.pid)
            peak["pss"] = max(peak["pss"], sum(_pss_mb(p) for p in pids))
            peak["processes"] = max(peak["processes"], len(pids))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    if process.returncode:
        raise SystemExit(f"training on {clips} clips failed:\n{output[-3000:]}")
    history = json.loads((work / f"run-{clips}" / "history.json").read_text())
    return {"clips": clips, "epoch_clips": history[0]["clips"],
            "tree_peak_pss_mb": round(peak["pss"], 1),
            "largest_process_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "processes": peak["processes"], "seconds": round(time.perf_counter() - started, 1),
            "clips_per_second": round(history[0]["clips_per_second"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "cache" / "spoofmix-extra")
    parser.add_argument("--clips", type=int, nargs="+", default=[400, 4000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "training-memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="training-memory-") as folder:
        runs = []
        for clips in args.clips:
            runs.append(one_run(clips, args.corpus.resolve(), args.workers, Path(folder)))
            print(json.dumps(runs[-1]), flush=True)
    spread = max(r["tree_peak_pss_mb"] for r in runs) - min(r["tree_peak_pss_mb"] for r in runs)
    report = {
        "what": "peak memory of one `edge-train train` epoch (default.toml model and front "
                "end, no caps, 1 epoch) against the number of training clips",
        "host_cpus": os.cpu_count(), "workers": args.workers, "corpus": args.corpus.name,
        "runs": runs, "tree_peak_pss_spread_mb": round(spread, 1), "target_mb": TARGET_MB,
        "within_target": spread <= TARGET_MB,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"peak PSS spread {spread:.1f} MB (target <= {TARGET_MB:.0f} MB)")


if __name__ == "__main__":
    main()
