"""Training the Keras model: streamed augmented windows each epoch, early stopping on dev EER.

Backend-agnostic Keras 3 (TensorFlow on a host, JAX on GPU machines, DataParallel over the
devices of a host: host_training.distribution). The data streams from decoded int16 shards
through worker processes (host_training.streaming), so memory does not grow with the corpus.
After every epoch the run folder holds a resumable checkpoint: the same command continues an
interrupted run where it stopped, on the same random stream.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output, write_text_atomically
from edge_runtime.metrics import equal_error_rate
from host_training.config import OptimConfig, TrainConfig, epoch_learning_rate
from host_training.datasets import (
    DatasetError,
    Utterance,
    default_data_root,
    load_split,
    summarize,
)
from host_training.model import save_model
from host_training.sam import enable_sam
from host_training.sampling import capped_selection, speaker_balanced_weights
from host_training.waveforms import load_clip_store

RESUME_FILE = "resume.json"
LAST_CHECKPOINT = "last.keras"
AVERAGE_FILE = "average.npz"
# Seconds between progress lines within an epoch.
PROGRESS_SECONDS = 30.0


class ResumeError(ValueError):
    pass


class CollapsedRunError(RuntimeError):
    """The model gives every dev clip one score: its sigmoid has saturated, and the loss on a
    saturated probability has no gradient left, so no later epoch can move it (seen in GPU
    rounds: a run stuck at dev EER 50 % for all of its epochs)."""


def collapse_of(dev_scores: np.ndarray) -> str | None:
    """What the dev scores say of a model that can no longer learn, or None."""
    if not np.all(np.isfinite(dev_scores)):
        return "gives dev scores that are not numbers: training diverged"
    if len(dev_scores) > 1 and np.ptp(dev_scores) == 0:
        return (f"gives all {len(dev_scores)} dev clips one score "
                f"({float(dev_scores[0]):.6g}): its output has saturated")
    return None


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


def corpus_root(config: TrainConfig) -> Path:
    """The corpus a config trains on: its ``root``, else $EDGE_DETECT_DATA or the shared one."""
    return Path(config.data.root) if config.data.root else default_data_root()


def clip_lists(config: TrainConfig, root: Path) -> tuple[list[Utterance], int, list[Utterance]]:
    """The training clips (the corpus's and ``train_roots``', then ``extra_train_roots``'), how
    many come before the extras, and the dev clips: the lists a run decodes and trains on."""
    data, seed = config.data, config.training.seed
    train_utts = _subset(load_split(root, data.train_split), data.max_files, seed)
    for corpus in data.train_roots:
        train_utts += _subset(load_split(Path(corpus), data.train_split), data.max_files, seed)
    base_count = len(train_utts)
    for extra in data.extra_train_roots:
        train_utts += load_split(Path(extra), data.train_split)
    dev_root = Path(data.dev_root) if data.dev_root else root
    dev_utts = _subset(load_split(dev_root, data.dev_split), data.max_files, seed + 1)
    return train_utts, base_count, dev_utts


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


def make_optimizer(training: OptimConfig):
    """Adam, or AdamW when ``training.weight_decay`` is set; biases and batch-norm parameters
    are not decayed (they set offsets and scales, not what a layer looks for)."""
    import keras

    if training.weight_decay == 0:
        return keras.optimizers.Adam(training.learning_rate)
    return exempt_offsets_from_decay(
        keras.optimizers.AdamW(training.learning_rate, weight_decay=training.weight_decay))


def exempt_offsets_from_decay(optimizer):
    """Biases and batch-norm scales keep their size under weight decay. Keras does not save
    this choice with the optimizer, so a resumed run makes it again."""
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _report(checkpoint: Path, config: TrainConfig, root: Path, cache_dir: Path,
            workers: int, log) -> dict[str, dict[str, object]]:
    """Float EER (pooled and per attack) of the best checkpoint on the report splits."""
    from host_training.evaluate import split_metrics
    from host_training.model import load_detector
    from host_training.streaming import stream_clip_scores

    model = load_detector(checkpoint)
    report = {}
    for split in config.data.report_splits:
        utterances = load_split(root, split)
        store = load_clip_store(utterances, config.frontend.sample_rate, cache_dir, workers, log)
        scores = stream_clip_scores(model, store, config.frontend, workers)
        metrics = split_metrics(utterances, scores, 0.5)
        report[split] = {"eer": metrics["eer"], "min_dcf": metrics["min_dcf"],
                         "per_attack_eer": {k: v["eer"] for k, v in metrics["per_attack"].items()}}
        log(f"{split}: float EER {metrics['eer'] * 100:.2f} %  " + "  ".join(
            f"{k} {v * 100:.1f}" for k, v in report[split]["per_attack_eer"].items()))
    return report


def _progress_callback(epoch: int, total_clips: int, batch_size: int, log):
    import keras

    class EpochProgress(keras.callbacks.Callback):
        """A line every PROGRESS_SECONDS: clips done and clips/s of this epoch."""

        def on_train_begin(self, logs=None) -> None:
            self.started = self.last = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            now = time.perf_counter()
            if now - self.last < PROGRESS_SECONDS:
                return
            self.last = now
            done = min((batch + 1) * batch_size, total_clips)
            loss = (logs or {}).get("loss")
            log(f"  epoch {epoch}: {done}/{total_clips} clips, "
                f"{done / (now - self.started):.1f} clips/s"
                + (f", loss {float(loss):.4f}" if loss is not None else ""))

    return EpochProgress()


def _resume_state(run_dir: Path, config: TrainConfig) -> dict | None:
    """The state of an interrupted run of this same config in ``run_dir``, if any."""
    state_path = run_dir / RESUME_FILE
    if not state_path.exists():
        return None
    saved = json.loads((run_dir / "config.json").read_text())
    if saved != json.loads(json.dumps(config.to_dict())):
        raise ResumeError(f"{run_dir} holds a run of another config; give a new --out "
                          "(or the config it was started with, to resume it)")
    return json.loads(state_path.read_text())


def _save_checkpoint(run_dir: Path, model, state: dict, averaged: WeightAverage) -> None:
    """Model and optimizer, weight average, then the state that points at them (last, so a
    run killed in between resumes from the previous complete epoch)."""
    save_model(model, run_dir / LAST_CHECKPOINT)
    if averaged.count:
        with atomic_output(run_dir / AVERAGE_FILE) as temporary:
            np.savez(temporary, *averaged._sum, count=averaged.count)
    write_text_atomically(run_dir / RESUME_FILE, json.dumps(state, indent=2))


def _load_average(run_dir: Path, averaged: WeightAverage) -> None:
    path = run_dir / AVERAGE_FILE
    if not path.exists():
        return
    with np.load(path) as stored:
        averaged.count = int(stored["count"])
        averaged._sum = [stored[f"arr_{i}"] for i in range(len(stored.files) - 1)]


def train(config: TrainConfig, run_dir: Path, cache_dir: Path | None = None,
          data_root: Path | None = None, log=print, workers: int | None = None) -> TrainResult:
    import keras

    from host_training.distribution import configure
    from host_training.model import build_model, detector_loss, load_detector
    from host_training.source_adversary import (
        SourceAdversaryLoss,
        bona_fide_sources,
        detector_of,
        with_source_head,
    )
    from host_training.source_ranking import SourceRankingLoss, ranking_sources
    from host_training.streaming import TrainingWindows, epoch_rng, stream_clip_scores

    root = data_root or corpus_root(config)
    seed = config.training.seed
    workers = workers or os.cpu_count() or 1
    cache_dir = cache_dir or run_dir / "clips"
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _resume_state(run_dir, config)
    if state is None:
        write_text_atomically(run_dir / "config.json", json.dumps(config.to_dict(), indent=2))
    keras.utils.set_random_seed(seed)

    train_utts, base_count, dev_utts = clip_lists(config, root)
    log(f"train: {summarize(train_utts)['files']} files from {root} and "
        f"{len(config.data.train_roots) + len(config.data.extra_train_roots)} more roots; "
        f"dev: {len(dev_utts)} files from {config.data.dev_root or root}")
    rate = config.frontend.sample_rate
    train_store = load_clip_store(train_utts, rate, cache_dir, workers, log)
    dev_store = load_clip_store(dev_utts, rate, cache_dir, workers, log)
    train_labels = np.array([u.is_spoof for u in train_utts], dtype=np.float32)
    train_targets = training_targets(train_utts, train_labels, config, log)
    adversary = config.training.source_adversary_weight
    if adversary:
        sources, source_names = bona_fide_sources(train_utts)
        if len(source_names) < 2:
            raise DatasetError(f"source_adversary_weight needs bona fide clips of 2 or more "
                               f"sources; the training clips have {len(source_names)}")
        # the loss reads (spoof target, source index) per clip
        train_targets = np.column_stack([train_targets, sources]).astype(np.float32)
        log(f"source adversary: {len(source_names)} bona fide sources, confusion weight "
            f"{adversary}")
    ranking = config.training.source_ranking_weight
    if ranking:
        sources, source_names = ranking_sources(train_utts)
        if not source_names:
            raise DatasetError("source_ranking_weight needs a source with both bona fide and "
                               "spoofed training clips; the training clips have none")
        train_targets = np.column_stack([train_targets, sources]).astype(np.float32)
        log(f"source ranking: {len(source_names)} sources with both classes "
            f"({int((sources >= 0).sum())} of {len(sources)} clips), weight {ranking}")
    dev_labels = np.array([u.is_spoof for u in dev_utts], dtype=bool)
    # Babble is made of bona fide speech only, so no spoof audio leaks into bona fide clips.
    noise_clips = (np.array([i for i, u in enumerate(train_utts)
                             if not u.is_spoof and u.system == "-"])
                   if _uses_babble(config) else None)

    placement = configure(config.training.batch_size)
    log(f"training on {placement.description}; {workers} data workers")
    averaged = WeightAverage(config.training.average_from_epoch)
    if state is None:
        model = build_model(config.frontend.feature_shape, config.model)
        loss = detector_loss(config.model, config.training.label_smoothing)
        if adversary:
            model = with_source_head(model, len(source_names))
            loss = SourceAdversaryLoss(adversary, config.training.label_smoothing)
        if ranking:
            loss = SourceRankingLoss(ranking, config.training.label_smoothing)
        model.compile(optimizer=make_optimizer(config.training), loss=loss)
        history: list[dict[str, float]] = []
        best = (-1, float("inf"), 0.5)
        first_epoch, stopped = 1, False
    else:
        model = load_detector(run_dir / LAST_CHECKPOINT)
        exempt_offsets_from_decay(model.optimizer)
        history, best = state["history"], tuple(state["best"])
        first_epoch, stopped = state["epoch"] + 1, state["stopped"]
        _load_average(run_dir, averaged)
        log(f"resuming after epoch {state['epoch']} (best dev EER {best[1] * 100:.2f} % "
            f"at epoch {best[0]})")
    if config.training.sam_rho:
        enable_sam(model, config.training.sam_rho)
    # What is scored, kept as best.keras and exported: the model itself, or the detector
    # inside the training model (saved uncompiled: its optimizer is the training model's).
    detector = detector_of(model)
    log(f"model: {detector.count_params()} parameters, activation {config.model.activation}"
        + (f", SAM steps of radius {config.training.sam_rho}" if config.training.sam_rho else ""))

    def dev_rates():
        scores = stream_clip_scores(detector, dev_store, config.frontend, workers)
        return equal_error_rate(scores[~dev_labels], scores[dev_labels]), scores

    epoch = first_epoch
    for epoch in range(first_epoch, config.training.epochs + 1):
        if stopped:
            break
        started = time.perf_counter()
        rng = epoch_rng(seed, epoch)
        chosen = _epoch_selection(train_utts, base_count, config, rng)
        if config.data.speaker_balance:
            sample_weights = speaker_balanced_weights(train_utts, chosen, train_labels)
        else:
            weights = class_weights(train_labels[chosen])
            sample_weights = np.where(train_labels == 1, weights[1],
                                      weights[0]).astype(np.float32)
        learning_rate = epoch_learning_rate(config.training, epoch)
        model.optimizer.learning_rate.assign(learning_rate)
        windows = TrainingWindows(
            train_store, rng.permutation(chosen), train_targets, sample_weights,
            config.frontend, config.augment, seed, epoch, config.training.batch_size,
            noise_clips, workers, drop_remainder=placement.devices > 1,
            sharding=placement.sharding)
        fit = model.fit(windows, epochs=1, verbose=0, callbacks=[_progress_callback(
            epoch, windows.clips, windows.batch_size, log)])
        train_seconds = time.perf_counter() - started
        rates, dev_scores = dev_rates()
        entry = {"epoch": epoch, "loss": float(fit.history["loss"][0]), "dev_eer": rates.eer,
                 "dev_threshold": rates.threshold, "clips": int(windows.clips),
                 "learning_rate": learning_rate,
                 "clips_per_second": windows.clips / train_seconds}
        improved = rates.eer < best[1]
        if improved:
            best = (epoch, rates.eer, rates.threshold)
            save_model(detector, run_dir / "best.keras")
        note = "  (best)" if improved else ""
        if averaged.update(epoch, model.get_weights()):
            current = model.get_weights()
            model.set_weights(averaged.weights())
            mean_rates, _ = dev_rates()
            entry["averaged_dev_eer"] = mean_rates.eer
            note += f"  averaged {mean_rates.eer * 100:5.2f} %"
            if mean_rates.eer < best[1]:
                best = (epoch, mean_rates.eer, mean_rates.threshold)
                save_model(detector, run_dir / "best.keras")
                note += " (best)"
            model.set_weights(current)
        entry["seconds"] = time.perf_counter() - started
        history.append(entry)
        log(f"epoch {epoch:3d}/{config.training.epochs}  {windows.clips} clips  "
            f"{entry['clips_per_second']:.1f} clips/s  loss {entry['loss']:.4f}  "
            f"dev EER {rates.eer * 100:5.2f} %  {entry['seconds']:.0f} s" + note)
        write_text_atomically(run_dir / "history.json", json.dumps(history, indent=2))
        collapse = collapse_of(dev_scores)
        if collapse:
            raise CollapsedRunError(
                f"epoch {epoch}: the model {collapse} and no later epoch can move it; history "
                f"so far in {run_dir / 'history.json'}. Start again with another --seed or a "
                "lower learning rate")
        stopped = epoch - best[0] >= config.training.patience
        _save_checkpoint(run_dir, model, {"epoch": epoch, "best": list(best),
                                          "stopped": stopped, "history": history}, averaged)
        if stopped:
            log(f"early stop: no dev EER gain for {config.training.patience} epochs")

    summary = {
        "best_epoch": best[0], "dev_eer": best[1], "dev_threshold": best[2],
        "parameters": int(detector.count_params()), "data_root": str(root),
        "train": summarize(train_utts), "dev": summarize(dev_utts), "report": {},
        "backend": placement.backend, "devices": placement.devices,
    }
    if config.data.report_splits:
        summary["report"] = _report(run_dir / "best.keras", config, root, cache_dir, workers,
                                    log)
    write_text_atomically(run_dir / "metrics.json", json.dumps(summary, indent=2))
    return TrainResult(run_dir, best[0], best[1], best[2])
