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
from host_training.sampling import capped_selection
from host_training.waveforms import load_clip_bank, load_waveforms


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


def _epoch_selection(utterances: list[Utterance], base_count: int, config: TrainConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """Indices trained on this epoch: the capped share of every group (all clips without caps),
    of which the extras (``extra_train_roots``) keep a fresh random ``extra_train_fraction``."""
    data = config.data
    chosen = capped_selection(utterances, data.spoof_group_cap, data.bonafide_group_cap, rng)
    base, extra = chosen[chosen < base_count], chosen[chosen >= base_count]
    if data.extra_train_fraction < 1.0 and extra.size:
        extra = rng.choice(extra, size=round(extra.size * data.extra_train_fraction),
                           replace=False)
    return np.concatenate([base, np.sort(extra)]).astype(int)


class WeightAverage:
    """Running mean of the weights after each epoch from ``start`` on (0 = never)."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.count = 0
        self._sum: list[np.ndarray] = []

    def update(self, epoch: int, weights: list[np.ndarray]) -> bool:
        """Adds this epoch's weights; True once the mean holds two epochs or more."""
        if not self.start or epoch < self.start:
            return False
        if not self._sum:
            self._sum = [w.astype(np.float64) for w in weights]
        else:
            for total, w in zip(self._sum, weights, strict=True):
                total += w
        self.count += 1
        return self.count >= 2

    def weights(self) -> list[np.ndarray]:
        return [(total / self.count).astype(np.float32) for total in self._sum]


def _uses_babble(config: TrainConfig) -> bool:
    return config.augment.noise_prob > 0 and "babble" in config.augment.noise_types


def training_targets(utterances: list[Utterance], labels: np.ndarray, config: TrainConfig,
                     log=print) -> np.ndarray:
    """Each clip's target: its label, or with a teacher, (1 - w) * label + w * teacher score."""
    weight = config.training.teacher_weight
    if weight == 0:
        return labels
    scores = json.loads(Path(config.training.teacher_scores).read_text())
    teacher = np.array([scores.get(str(u.path.resolve()), np.nan) for u in utterances])
    missing = np.isnan(teacher)
    log(f"teacher: soft scores for {int((~missing).sum())} of {len(utterances)} clips "
        f"(weight {weight}); the rest keep their label")
    teacher[missing] = labels[missing]
    return ((1 - weight) * labels + weight * teacher).astype(np.float32)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    counts = np.bincount(labels.astype(int), minlength=2)
    total = counts.sum()
    return {k: float(total / (2 * max(counts[k], 1))) for k in (0, 1)}


def _report(checkpoint: Path, config: TrainConfig, root: Path, frontend: Frontend,
            cache_dir: Path | None, log) -> dict[str, dict[str, object]]:
    """Float EER (pooled and per attack) of the best checkpoint on the report splits."""
    import keras

    from host_training.evaluate import split_metrics

    model = keras.models.load_model(checkpoint)
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
    import keras

    from host_training.model import build_model

    root = data_root or (Path(config.data.root) if config.data.root else default_data_root())
    dev_root = Path(config.data.dev_root) if config.data.dev_root else root
    seed = config.training.seed
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    frontend = Frontend(config.frontend)
    train_utts = _subset(load_split(root, config.data.train_split), config.data.max_files, seed)
    for corpus in config.data.train_roots:
        train_utts += _subset(load_split(Path(corpus), config.data.train_split),
                              config.data.max_files, seed)
    base_count = len(train_utts)
    for extra in config.data.extra_train_roots:
        train_utts += load_split(Path(extra), config.data.train_split)
    dev_utts = _subset(load_split(dev_root, config.data.dev_split), config.data.max_files,
                       seed + 1)
    log(f"train: {summarize(train_utts)['files']} files from {root} and "
        f"{len(config.data.train_roots) + len(config.data.extra_train_roots)} more roots; "
        f"dev: {len(dev_utts)} files from {dev_root}")
    train_waves = load_clip_bank(train_utts, config.frontend.sample_rate, cache_dir)
    dev_waves = load_waveforms(dev_utts, config.frontend.sample_rate, cache_dir)
    train_labels = np.array([u.is_spoof for u in train_utts], dtype=np.float32)
    train_targets = training_targets(train_utts, train_labels, config, log)
    dev_labels = np.array([u.is_spoof for u in dev_utts], dtype=bool)
    dev_features, dev_owners = clip_windows(dev_waves, frontend)
    # Babble is made of bona fide speech only, so no spoof audio leaks into bona fide clips.
    noise_bank = [train_waves[i] for i, u in enumerate(train_utts)
                  if not u.is_spoof and u.system == "-"] if _uses_babble(config) else []

    model = build_model(config.frontend.feature_shape, config.model)
    model.compile(optimizer=keras.optimizers.Adam(config.training.learning_rate),
                  loss="binary_crossentropy")
    log(f"model: {model.count_params()} parameters, activation {config.model.activation}")

    def dev_rates():
        scores = clip_scores(keras_window_scores(model, dev_features), dev_owners, len(dev_utts))
        return equal_error_rate(scores[~dev_labels], scores[dev_labels])

    history: list[dict[str, float]] = []
    best = (-1, float("inf"), 0.5)
    averaged = WeightAverage(config.training.average_from_epoch)
    for epoch in range(1, config.training.epochs + 1):
        started = time.perf_counter()
        chosen = _epoch_selection(train_utts, base_count, config, rng)
        features = training_batch(train_waves.select(chosen), frontend, rng,
                                  config.augment, noise_bank)
        weights = class_weights(train_labels[chosen])
        fit = model.fit(features[..., None], train_targets[chosen],
                        batch_size=config.training.batch_size, epochs=1,
                        sample_weight=np.array([weights[int(y)] for y in train_labels[chosen]],
                                               dtype=np.float32),
                        shuffle=True, verbose=0)
        rates = dev_rates()
        entry = {"epoch": epoch, "loss": float(fit.history["loss"][0]), "dev_eer": rates.eer,
                 "dev_threshold": rates.threshold}
        improved = rates.eer < best[1]
        if improved:
            best = (epoch, rates.eer, rates.threshold)
            model.save(run_dir / "best.keras")
        note = "  (best)" if improved else ""
        if averaged.update(epoch, model.get_weights()):
            current = model.get_weights()
            model.set_weights(averaged.weights())
            mean_rates = dev_rates()
            entry["averaged_dev_eer"] = mean_rates.eer
            note += f"  averaged {mean_rates.eer * 100:5.2f} %"
            if mean_rates.eer < best[1]:
                best = (epoch, mean_rates.eer, mean_rates.threshold)
                model.save(run_dir / "best.keras")
                note += " (best)"
            model.set_weights(current)
        entry["seconds"] = time.perf_counter() - started
        history.append(entry)
        log(f"epoch {epoch:3d}/{config.training.epochs}  {len(chosen)} clips  "
            f"loss {entry['loss']:.4f}  "
            f"dev EER {rates.eer * 100:5.2f} %  {entry['seconds']:.0f} s" + note)
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
