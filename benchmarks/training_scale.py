#!/usr/bin/env python3
"""Training throughput (clips/s) of the streaming pipeline on any Keras backend and device set.

Generates speech-like clips (1-8 s) into a ClipStore, then times one epoch of
``model.fit`` on ``TrainingWindows`` exactly as ``edge-train train`` runs it (default.toml's
front end, model and augmentation; worker processes computing features with the board's front
end), after an untimed warm-up epoch that compiles the step. Appends one record per run to a
JSON list (``benchmarks/results/training-scale.json``).

``--pipeline resident`` times the model step alone: a few batches of features made once by the
same front end, cycled from memory, no workers; it shows what the devices can take when the
input keeps up. ``--pipeline frontend`` times the workers' job alone (read, augment, features in
``--workers`` forked processes, nothing handed over, no model), one fixed share per process:
the slowest share sets the time, so it is a lower bound on what the workers can feed (the
streamed loader, which hands each batch to whichever worker is free, measured 11-16 % more
with a ring of 3 x workers + 4 slots).

    # 2-core host (TensorFlow):
    KERAS_BACKEND=tensorflow nice -n 10 .venv/bin/python benchmarks/training_scale.py --workers 2
    # GPU host (JAX): one GPU, then all of them, same global batch
    CUDA_VISIBLE_DEVICES=0 KERAS_BACKEND=jax python3 benchmarks/training_scale.py
    KERAS_BACKEND=jax python3 benchmarks/training_scale.py
    # one process per GPU (the multi-host path on one host), 15 workers each
    for i in 0 1; do CUDA_VISIBLE_DEVICES=$i KERAS_BACKEND=jax \
      KERAS_DISTRIBUTION_JOB_ADDRESSES=localhost:12355 KERAS_DISTRIBUTION_NUM_PROCESSES=2 \
      KERAS_DISTRIBUTION_PROCESS_ID=$i python3 benchmarks/training_scale.py --workers 15 & done
    # the front end's ceiling on this host's cores
    python3 benchmarks/training_scale.py --pipeline frontend --epoch-clips 30720 --workers 30
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_OUT = REPO / "benchmarks" / "results" / "training-scale.json"
DEFAULT_CONFIG = REPO / "host_training" / "configs" / "default.toml"
RATE = 16000


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Voiced harmonics under a syllable envelope plus a little noise (int16)."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(90, 220) + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None) ** 0.5
    audio = 0.2 * voiced * envelope + 0.005 * rng.standard_normal(t.shape)
    return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)


def device_description() -> tuple[str, str, bool]:
    """Backend, device name, and whether that device is a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return backend, device.device_kind, True
    return backend, cpu_description(), False


def cpu_description() -> str:
    model = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def _frontend_share(job: tuple[Path, Path, np.ndarray]) -> int:
    """One process's share of the front-end-only pipeline: read, augment, features."""
    from edge_runtime.frontend import Frontend
    from host_training.config import load_config
    from host_training.features import training_window
    from host_training.streaming import clip_rng, single_threaded_numpy
    from host_training.waveforms import ClipStore

    store_dir, config_path, clips = job
    single_threaded_numpy()
    config = load_config(config_path)
    store, frontend = ClipStore(store_dir), Frontend(config.frontend)
    for clip in clips:
        training_window(store[int(clip)], frontend, clip_rng(0, 1, int(clip)),
                        config.augment, None)
    return len(clips)


def frontend_rate(store_dir: Path, config_path: Path, clips: np.ndarray,
                  workers: int) -> tuple[int, float]:
    """Clips and seconds for ``workers`` forked processes to make the features of ``clips``
    with nothing else running: the ceiling the streamed pipeline's workers can feed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = np.array_split(clips, workers)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_frontend_share, [(store_dir, config_path, s[:2]) for s in shares]))
        started = time.perf_counter()
        done = sum(pool.map(_frontend_share, [(store_dir, config_path, s) for s in shares]))
        return done, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2048, help="distinct clips generated")
    parser.add_argument("--epoch-clips", type=int, default=0,
                        help="clips in the timed epoch, drawn from --clips (default: all)")
    parser.add_argument("--batch", type=int, default=256, help="global batch size")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--pipeline", choices=("streamed", "resident", "frontend"),
                        default="streamed")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--store", type=Path, default=None,
                        help="folder for the generated clips (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    import keras

    from host_training.config import load_config
    from host_training.distribution import configure
    from host_training.model import build_model
    from host_training.streaming import TrainingWindows
    from host_training.waveforms import INDEX_FILE, ClipStore, write_store

    config = load_config(args.config)
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="training-scale-"))
    if not (store_dir / INDEX_FILE).exists():
        rng = np.random.default_rng(0)
        write_store(store_dir, (speech_like(rng.uniform(1.0, 8.0), rng)
                                for _ in range(args.clips)))
    store = ClipStore(store_dir)
    print(f"{len(store)} clips in {store_dir}", file=sys.stderr, flush=True)
    epoch_clips = args.epoch_clips or len(store)
    if args.pipeline == "frontend":  # before any accelerator starts: the workers are forked
        clips, seconds = frontend_rate(store_dir, args.config,
                                       np.arange(epoch_clips) % len(store), args.workers)
        write_record(args, {"backend": "numpy", "device": cpu_description(), "gpus": 0,
                            "global_batch": 0, "clips_per_second": round(clips / seconds, 1),
                            "pipeline": args.pipeline, "workers": args.workers,
                            "clips": clips, "seconds": round(seconds, 2)})
        return
    placement = configure(args.batch)
    backend, device, on_gpu = device_description()
    keras.utils.set_random_seed(0)
    model = build_model(config.frontend.feature_shape, config.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    labels = (np.arange(len(store)) % 2).astype(np.float32)
    weights = np.ones(len(store), dtype=np.float32)

    def epoch_data(epoch: int, clips: int):
        order = np.random.default_rng(epoch).integers(0, len(store), clips)
        windows = TrainingWindows(store, order, labels, weights, config.frontend,
                                  config.augment, 0, epoch, args.batch, None, args.workers,
                                  drop_remainder=True, sharding=placement.sharding)
        if args.pipeline == "streamed":
            # every process feeds its own share: the epoch's clips are all processes' shares
            return windows, windows.clips * placement.sharding.count
        return Resident(windows, clips // args.batch), (clips // args.batch) * args.batch

    class Resident(keras.utils.PyDataset):
        """Batches made once by the streamed pipeline's own __getitem__, cycled from RAM."""

        def __init__(self, windows: TrainingWindows, batches: int) -> None:
            super().__init__()
            self.cached = [windows[i] for i in range(min(4, windows.num_batches))]
            self.batches = batches

        @property
        def num_batches(self) -> int:
            return self.batches

        def __getitem__(self, index: int):
            return self.cached[index % len(self.cached)]

    warmup, _ = epoch_data(0, 3 * args.batch)
    started = time.perf_counter()
    model.fit(warmup, epochs=1, verbose=0)
    print(f"warm-up epoch (compile, worker start): {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    data, clips = epoch_data(1, epoch_clips)

    class Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs=None) -> None:
            now = time.perf_counter()
            if now - self.last >= 10:
                self.last = now
                print(f"  {(batch + 1) * args.batch} clips, "
                      f"{(batch + 1) * args.batch / (now - started):.0f} clips/s",
                      file=sys.stderr, flush=True)

    progress = Progress()
    started = progress.last = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, callbacks=[progress])
    seconds = time.perf_counter() - started
    record = {
        "backend": backend, "device": device, "gpus": placement.devices if on_gpu else 0,
        "global_batch": args.batch,
        "clips_per_second": round(clips / seconds, 1), "pipeline": args.pipeline,
        "workers": args.workers if args.pipeline == "streamed" else 0,
        "clips": clips, "seconds": round(seconds, 2),
        "processes": placement.sharding.count, "placement": placement.description,
        "keras": keras.__version__,
    }
    if placement.sharding.index == 0:  # the first process writes the record of them all
        write_record(args, record)


def write_record(args: argparse.Namespace, record: dict[str, object]) -> None:
    from edge_runtime.atomic import write_text_atomically

    record = {**record, "host_cpus": os.cpu_count(), "python": platform.python_version(),
              "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")}
    if args.note:
        record["note"] = args.note
    print(json.dumps(record))
    runs = json.loads(args.out.read_text()) if args.out.exists() else []
    runs.append(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(args.out, json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
