"""A round of training runs side by side on a lent GPU host that has no network and takes files
only in bounded uploads, and gives back only a few small files (this workplace's `device` tool:
64 MiB of working tree per call, at most 8 files of 16 MiB back).

    python -m host_training.gpu_round pack --out cache/up ROOT:NAME:SPLITS ...   # here
    # one call per part on the GPU host: tar xf cache/up/partNN.tar -C cache
    python -m host_training.gpu_round prep --config CONFIG                        # there
    python -m host_training.gpu_round launch CONFIG:SEED ...                      # there
    python -m host_training.gpu_round wait SECONDS                                # there
    python -m host_training.gpu_round collect --out "$OUT"                        # there
    # here: tar xf runs-N.tar -C runs/ROUND
    python -m host_training.gpu_round summary runs/ROUND --baseline BASELINE_STEM  # here
    # then edge-train export / evaluate per run

Runs write to runs/<config stem>-s<seed>; each runs as its own process session, so it outlives
the call that started it while the host stays lent.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click

from host_training.cli_options import ERROR_PREFIX

RUNS = Path("runs")
# What one upload may hold, leaving room for the working tree that travels with it.
DEFAULT_PART_MB = 56
# Runs per returned tar: 8 of v2.5's size (about 1.4 MB each without optimizer state) stay
# well under the 16 MiB a returned file may have.
RUNS_PER_TAR = 8
RUN_FILES = ("history.json", "metrics.json", "config.json")


def _corpus_files(spec: str) -> list[tuple[Path, str]]:
    """``ROOT:NAME:SPLIT,SPLIT`` -> (file, name inside the tar) for the protocols and splits."""
    root, name, splits = spec.split(":")
    files = []
    for sub in ("protocols", *splits.split(",")):
        for path in sorted((Path(root) / sub).rglob("*")):
            if path.is_file():
                files.append((path, f"{name}/{path.relative_to(root)}"))
    return files


def pack_parts(specs: list[str], out: Path, part_bytes: int) -> list[Path]:
    """Tar files of at most ``part_bytes`` (plus one file) holding every file of ``specs``."""
    out.mkdir(parents=True, exist_ok=True)
    parts: list[list[tuple[Path, str]]] = [[]]
    size = 0
    for path, name in (f for spec in specs for f in _corpus_files(spec)):
        cost = path.stat().st_size + tarfile.BLOCKSIZE * 2  # header and padding
        if parts[-1] and size + cost > part_bytes:
            parts.append([])
            size = 0
        parts[-1].append((path, name))
        size += cost
    written = []
    for index, members in enumerate(parts):
        target = out / f"part{index:02d}.tar"
        with tarfile.open(target, "w") as tar:
            for path, name in members:
                tar.add(path, arcname=name)
        written.append(target)
    return written


def run_name(config: Path, seed: int) -> str:
    return f"{config.stem}-s{seed}"


def arm_and_seed(name: str) -> tuple[str, int] | None:
    """``run_name`` read back: (config stem, seed), or None for a name it did not write."""
    stem, _, seed = name.rpartition("-s")
    return (stem, int(seed)) if stem and seed.isdigit() else None


def run_command(config: Path, seed: int, workers: int) -> list[str]:
    return [sys.executable, "-c", "from host_training.cli import main; main()", "train",
            "--config", str(config),
            "--out", str(RUNS / run_name(config, seed)), "--seed", str(seed),
            "--workers", str(workers)]


def round_table(runs: Path, baseline: str) -> list[str]:
    """Per arm (config stem) of a collected round: each seed's float dev EER at its best epoch
    (what training selected on), their mean ± sd, and the mean over the seeds both ran of the
    difference to ``baseline``'s run of the same seed (GPU runs differ from round to round, so
    an arm is compared with the baseline of its own round). Runs without metrics.json (not
    finished) are left out and counted."""
    arms: dict[str, dict[int, float]] = defaultdict(dict)
    unfinished = 0
    for run in sorted(path for path in runs.iterdir() if path.is_dir()):
        named = arm_and_seed(run.name)
        if named is None:
            continue
        if not (run / "metrics.json").exists():
            unfinished += 1
            continue
        stem, seed = named
        arms[stem][seed] = json.loads((run / "metrics.json").read_text())["dev_eer"] * 100
    if baseline not in arms:
        raise click.ClickException(f"no finished run of {baseline!r} in {runs} "
                                   f"(arms: {', '.join(sorted(arms)) or 'none'})")
    lines = ["| arm | seeds | dev EER per seed (float, %) | mean ± sd | paired |",
             "|---|---|---|---|---|"]
    for stem in [baseline, *sorted(set(arms) - {baseline})]:
        seeds = sorted(arms[stem])
        values = [arms[stem][s] for s in seeds]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        shared = [s for s in seeds if s in arms[baseline]]
        paired = (f"{statistics.mean(arms[stem][s] - arms[baseline][s] for s in shared):+.2f} "
                  f"over {len(shared)}" if shared and stem != baseline else "-")
        lines.append(f"| {stem} | {','.join(map(str, seeds))} | "
                     f"{' / '.join(f'{v:.1f}' for v in values)} | "
                     f"{statistics.mean(values):.1f} ± {spread:.1f} | {paired} |")
    if unfinished:
        lines.append(f"\n{unfinished} runs without metrics.json (not finished) left out")
    return lines


def collect_runs(runs: Path, out: Path) -> list[str]:
    """Every run with a best.keras -> ``out/runs-N.tar``: the model without optimizer state,
    its history, metrics, config and log."""
    from host_training.model import load_detector

    names = sorted(p.name for p in runs.iterdir() if (p / "best.keras").exists())
    with tempfile.TemporaryDirectory() as stage:
        for first in range(0, len(names), RUNS_PER_TAR):
            with tarfile.open(out / f"runs-{first // RUNS_PER_TAR}.tar", "w") as tar:
                for name in names[first:first + RUNS_PER_TAR]:
                    model = Path(stage) / f"{name}.keras"
                    load_detector(runs / name / "best.keras", compile=False).save(model)
                    tar.add(model, arcname=f"{name}/best.keras")
                    for file in RUN_FILES:
                        if (runs / name / file).exists():
                            tar.add(runs / name / file, arcname=f"{name}/{file}")
                    if (runs / f"{name}.log").exists():
                        tar.add(runs / f"{name}.log", arcname=f"{name}/train.log")
    return names


@click.group()
def main() -> None:
    """A training round on a lent GPU host (see the module's docstring)."""


@main.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--part-mb", type=click.IntRange(1), default=DEFAULT_PART_MB, show_default=True)
def pack(specs: tuple[str, ...], out: Path, part_mb: int) -> None:
    """Corpora (ROOT:NAME:SPLIT,SPLIT) -> tar parts, one per upload; unpacked into cache/ they
    give cache/NAME/{protocols,SPLIT}."""
    parts = pack_parts(list(specs), out, part_mb * 1_000_000)
    click.echo(f"{len(parts)} parts in {out}")


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, exists=True),
              required=True)
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), default=Path("cache"))
def prep(config_path: Path, cache_dir: Path) -> None:
    """Decode the config's training and dev clips once, before the runs start side by side."""
    from host_training.config import load_config
    from host_training.train import clip_lists, corpus_root
    from host_training.waveforms import load_clip_store

    config = load_config(config_path)
    train, _, dev = clip_lists(config, corpus_root(config))
    for utterances in (train, dev):
        load_clip_store(utterances, config.frontend.sample_rate, cache_dir, os.cpu_count())
    click.echo(f"decoded {len(train)} training and {len(dev)} dev clips into {cache_dir}")


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--gpus", type=click.IntRange(1), default=2, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
def launch(runs: tuple[str, ...], gpus: int, workers: int) -> None:
    """Start CONFIG:SEED runs in the background, one GPU each in turn (JAX, no preallocation)."""
    RUNS.mkdir(exist_ok=True)
    for index, spec in enumerate(runs):
        config, seed = spec.rsplit(":", 1)
        command = run_command(Path(config), int(seed), workers)
        env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
               "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": str(index % gpus)}
        # (the child keeps its own copy of the log's descriptor)
        with open(RUNS / f"{run_name(Path(config), int(seed))}.log", "w") as log:
            subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    click.echo(f"launched {len(runs)} runs")


@main.command()
@click.argument("seconds", type=click.IntRange(0))
def wait(seconds: int) -> None:
    """Until every launched run has written metrics.json or stopped with an error, or SECONDS
    pass; then each run's last epoch line (and a stopped run's error)."""
    deadline = time.monotonic() + seconds
    logs = sorted(RUNS.glob("*.log"))

    def error_of(lines: list[str]) -> str | None:
        return lines[-1] if lines and lines[-1].startswith(ERROR_PREFIX) else None

    def done(log: Path) -> bool:
        return (RUNS / log.stem / "metrics.json").exists()

    def finished(log: Path) -> bool:
        return done(log) or error_of(log.read_text(errors="replace").splitlines()) is not None

    while time.monotonic() < deadline and not all(map(finished, logs)):
        time.sleep(10)
    for log in logs:
        lines = log.read_text(errors="replace").splitlines()
        epochs = [line for line in lines if line.startswith("epoch ")]
        error = error_of(lines)
        state = "failed" if error else "done" if done(log) else "running"
        click.echo(f"{log.stem}: {state}, {len(epochs)} epochs; {epochs[-1] if epochs else ''}"
                   + (f"\n  {error}" if error else ""))


@main.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True)
def collect(out: Path) -> None:
    """Every run's best model (no optimizer state), history and log -> OUT/runs-N.tar."""
    # Re-saving a model needs no GPU, and the runs still going hold theirs: JAX would otherwise
    # try to take most of a GPU's memory for this process.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    names = collect_runs(RUNS, out)
    click.echo(f"collected {len(names)} runs into {out}")


@main.command()
@click.argument("runs", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--baseline", required=True, help="The config stem the other arms are paired with.")
def summary(runs: Path, baseline: str) -> None:
    """Per arm of a collected round (RUNS: the folder its tars were unpacked into): float dev
    EER per seed, mean ± sd, and the paired difference to BASELINE's runs."""
    click.echo("\n".join(round_table(runs, baseline)))


if __name__ == "__main__":
    main()
