"""Training the Keras model: augmented windows each epoch, early stopping on dev EER."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.frontend import Frontend
from edge_runtime.metrics import equal_error_rate
from host_training.config import TrainConfig
from host_training.datasets import Utterance, default_data_root, load_split, summarize
from host_training.features import (
    clip_scores,
    clip_windows,
    keras_clip_scores,
    keras_window_scores,
    training_batch,
)
from host_training.waveforms import load_waveforms


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_dev_eer: float
    dev_threshold: float


def _subset(utterances: list[Utterance], max_files: int, seed: int) -> list[Utterance]:
    if not max_files or max_files >= len(utterances):
        return utterances
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(utterances), size=max_files, replace=False)
    return [utterances[i] for i in sorted(chosen)]


def _epoch_selection(base_count: int, total: int, extra_fraction: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Indices trained on this epoch: every corpus clip plus a fresh random share of extras."""
    extra = np.arange(base_count, total)
    if extra_fraction < 1.0 and extra.size:
        extra = rng.choice(extra, size=round(extra.size * extra_fraction), replace=False)
    return np.concatenate([np.arange(base_count), np.sort(extra)]).astype(int)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    counts = np.bincount(labels.astype(int), minlength=2)
    total = counts.sum()
    return {k: float(total / (2 * max(counts[k], 1))) for k in (0, 1)}


def _report(checkpoint: Path, config: TrainConfig, root: Path, frontend: Frontend,
            cache_dir: Path | None, log) -> dict[str, dict[str, object]]:
    """Float EER (pooled and per attack) of the best checkpoint on the report splits."""
    import tensorflow as tf

    from host_training.evaluate import split_metrics

    model = tf.keras.models.load_model(checkpoint)
    report = {}
    for split in config.data.report_splits:
        utterances = load_split(root, split)
        waves = load_waveforms(utterances, config.frontend.sample_rate, cache_dir)
        scores = keras_clip_scores(model, waves, frontend)
        metrics = split_metrics(utterances, scores, 0.5)
        report[split] = {"eer": metrics["eer"], "min_dcf": metrics["min_dcf"],
                         "per_attack_eer": {k: v["eer"] for k, v in metrics["per_attack"].items()}}
        log(f"{split}: float EER {metrics['eer'] * 100:.2f} %  " + "  ".join(
            f"{k} {v * 100:.1f}" for k, v in report[split]["per_attack_eer"].items()))
    return report


def train(config: TrainConfig, run_dir: Path, cache_dir: Path | None = None,
          data_root: Path | None = None, log=print) -> TrainResult:
    import tensorflow as tf

    from host_training.model import build_model

    root = data_root or (Path(config.data.root) if config.data.root else default_data_root())
    seed = config.training.seed
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    frontend = Frontend(config.frontend)
    train_utts = _subset(load_split(root, config.data.train_split), config.data.max_files, seed)
    base_count = len(train_utts)
    for extra in config.data.extra_train_roots:
        train_utts += load_split(Path(extra), config.data.train_split)
    dev_utts = _subset(load_split(root, config.data.dev_split), config.data.max_files, seed + 1)
    log(f"train: {summarize(train_utts)['files']} files, dev: {len(dev_utts)} files from {root}")
    train_waves = load_waveforms(train_utts, config.frontend.sample_rate, cache_dir)
    dev_waves = load_waveforms(dev_utts, config.frontend.sample_rate, cache_dir)
    train_labels = np.array([u.is_spoof for u in train_utts], dtype=np.float32)
    dev_labels = np.array([u.is_spoof for u in dev_utts], dtype=bool)
    dev_features, dev_owners = clip_windows(dev_waves, frontend)
    # Babble is made of bona fide speech only, so no spoof audio leaks into bona fide clips.
    noise_bank = [w for w, u in zip(train_waves, train_utts, strict=True)
                  if not u.is_spoof and u.system == "-"]

    model = build_model(config.frontend.feature_shape, config.model)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.training.learning_rate),
                  loss="binary_crossentropy")
    log(f"model: {model.count_params()} parameters, activation {config.model.activation}")

    history: list[dict[str, float]] = []
    best = (-1, float("inf"), 0.5)
    for epoch in range(1, config.training.epochs + 1):
        started = time.perf_counter()
        chosen = _epoch_selection(base_count, len(train_waves), config.data.extra_train_fraction,
                                  rng)
        features = training_batch([train_waves[i] for i in chosen], frontend, rng,
                                  config.augment, noise_bank)
        fit = model.fit(features[..., None], train_labels[chosen],
                        batch_size=config.training.batch_size,
                        epochs=1, class_weight=class_weights(train_labels[chosen]),
                        shuffle=True, verbose=0)
        scores = clip_scores(keras_window_scores(model, dev_features), dev_owners, len(dev_utts))
        rates = equal_error_rate(scores[~dev_labels], scores[dev_labels])
        entry = {"epoch": epoch, "loss": float(fit.history["loss"][0]), "dev_eer": rates.eer,
                 "dev_threshold": rates.threshold, "seconds": time.perf_counter() - started}
        history.append(entry)
        improved = rates.eer < best[1]
        if improved:
            best = (epoch, rates.eer, rates.threshold)
            model.save(run_dir / "best.keras")
        log(f"epoch {epoch:3d}/{config.training.epochs}  loss {entry['loss']:.4f}  "
            f"dev EER {rates.eer * 100:5.2f} %  {entry['seconds']:.0f} s"
            + ("  (best)" if improved else ""))
        (run_dir / "history.json").write_text(json.dumps(history, indent=2))
        if epoch - best[0] >= config.training.patience:
            log(f"early stop: no dev EER gain for {config.training.patience} epochs")
            break

    summary = {
        "best_epoch": best[0], "dev_eer": best[1], "dev_threshold": best[2],
        "parameters": int(model.count_params()), "data_root": str(root),
        "train": summarize(train_utts), "dev": summarize(dev_utts), "report": {},
    }
    if config.data.report_splits:
        summary["report"] = _report(run_dir / "best.keras", config, root, frontend, cache_dir,
                                    log)
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(run_dir, best[0], best[1], best[2])
