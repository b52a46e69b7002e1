"""A small network over the encoder's frame sequence: the teacher's second kind of head.

Kawa et al. (Interspeech 2023) trained small CNNs on Whisper's frame-level states rather than
on pooled statistics. This head: per-channel standardisation (from the training frames), a
per-frame projection, two 1-D convolutions (kernel 5, the second dilated), attentive
statistics pooling over the clip's frames (mask-aware), one logit. Training draws a fresh
group-capped share of each spoofing system and bona fide source per epoch
(sampling.capped_selection), each class half the loss, random crops of CROP_FRAMES; the
epoch kept is the one with the lowest extra-dev EER (the split that chooses), and eval is
only reported. Scoring uses each clip's frames whole (up to the cache's 8 s = 400 frames).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic import atomic_output, write_text_atomically
from edge_runtime.metrics import equal_error_rate
from host_training.datasets import Utterance
from host_training.sampling import capped_selection
from host_training.teacher.layer_cache import layer_split, load_frames

CROP_FRAMES = 200  # 4 s of 20-ms frames per training example
MAX_FRAMES = 400  # the cache keeps each clip's first 8 s
MODEL_FILE = "frame_head.weights.h5"
NORM_FILE = "frame_norm.npz"
CONFIG_FILE = "frame_config.json"


@dataclass(frozen=True)
class FrameHeadConfig:
    layers: tuple[int, ...] = (2,)
    width: int = 64
    dropout: float = 0.3
    epochs: int = 20
    patience: int = 5
    batch: int = 64
    learning_rate: float = 1e-3
    spoof_cap: int = 40  # clips per spoofing system per epoch, as the student's default
    bonafide_cap: int = 300  # clips per bona fide source per epoch
    seed: int = 0


def build_frame_head(channels: int, config: FrameHeadConfig):
    import keras
    from keras import layers, ops

    frames = keras.Input((None, channels), name="frames")
    mask = keras.Input((None,), name="mask")
    keep = ops.expand_dims(mask, -1)
    # Padded frames are zeroed after every layer, so a clip scores the same alone or padded
    # in a batch (the convolutions' own padding is zeros too).
    h = layers.Dropout(config.dropout / 3)(frames)
    h = layers.Dense(config.width, activation="relu")(h) * keep
    h = layers.Conv1D(config.width, 5, padding="same", activation="relu")(h) * keep
    h = layers.Conv1D(config.width, 5, padding="same", dilation_rate=2,
                      activation="relu")(h) * keep
    # Attentive statistics pooling: softmax weights over the clip's own (unmasked) frames.
    scores = ops.squeeze(layers.Dense(1)(layers.Dense(32, activation="tanh")(h)), -1)
    scores = scores + (1.0 - mask) * -1e9
    weights = ops.expand_dims(ops.softmax(scores, axis=1), -1)
    mean = ops.sum(weights * h, axis=1)
    std = ops.sqrt(ops.maximum(ops.sum(weights * h * h, axis=1) - mean * mean, 1e-6))
    pooled = layers.Dropout(config.dropout)(layers.Concatenate()([mean, std]))
    logit = layers.Dense(1)(pooled)
    return keras.Model([frames, mask], logit)


def _batch(clips: Sequence[np.ndarray], length: int, norm: tuple[np.ndarray, np.ndarray],
           rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Standardised frames padded (with zeros, the mean) to ``length``, and their mask; a
    random crop of longer clips when ``rng`` is given, their start otherwise."""
    mean, scale = norm
    out = np.zeros((len(clips), length, len(mean)), np.float32)
    mask = np.zeros((len(clips), length), np.float32)
    for row, clip in enumerate(clips):
        start = int(rng.integers(0, len(clip) - length + 1)) if (
            rng is not None and len(clip) > length) else 0
        part = clip[start:start + length].astype(np.float32)
        out[row, :len(part)] = (part - mean) / scale
        mask[row, :len(part)] = 1.0
    return out, mask


def flat_frames(clips: list[np.ndarray]) -> list[np.ndarray]:
    """(frames, layers, 384) -> (frames, layers * 384) per clip: layers side by side."""
    return [c.reshape(len(c), -1) for c in clips]


def frame_norm(clips: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every frame of every clip."""
    total = np.zeros(clips[0].shape[1])
    squares = np.zeros(clips[0].shape[1])
    count = 0
    for clip in clips:
        values = clip.astype(np.float64)
        total += values.sum(0)
        squares += (values * values).sum(0)
        count += len(clip)
    mean = total / count
    scale = np.sqrt(np.maximum(squares / count - mean * mean, 1e-8))
    return mean.astype(np.float32), scale.astype(np.float32)


def score_clips(model, clips: Sequence[np.ndarray], norm: tuple[np.ndarray, np.ndarray],
                batch: int = 64) -> np.ndarray:
    """Spoof probability per clip over its whole cached frame sequence; clips are batched by
    length so padding stays small."""
    order = np.argsort([len(c) for c in clips])
    out = np.zeros(len(clips))
    for start in range(0, len(order), batch):
        members = order[start:start + batch]
        length = max(len(clips[i]) for i in members)
        x, mask = _batch([clips[i] for i in members], length, norm, None)
        logits = np.asarray(model([x, mask], training=False)).reshape(-1)
        out[members] = 1.0 / (1.0 + np.exp(-logits))
    return out


def _class_weights(labels: np.ndarray) -> np.ndarray:
    weights = np.ones(len(labels))
    for label in (False, True):
        weights[labels == label] = 0.5 * len(labels) / max((labels == label).sum(), 1)
    return weights


def train_frame_head(train: list[Utterance], train_clips: list[np.ndarray],
                     dev: list[Utterance], dev_clips: list[np.ndarray],
                     config: FrameHeadConfig, log: Callable[[str], None] = print,
                     ) -> tuple[Any, tuple[np.ndarray, np.ndarray], list[dict[str, float]]]:
    """The trained head (weights of its best dev epoch), its input norm and the epoch log."""
    import keras

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    norm = frame_norm(train_clips)
    model = build_frame_head(len(norm[0]), config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss_fn)
    labels = np.array([u.is_spoof for u in train], dtype=bool)
    dev_labels = np.array([u.is_spoof for u in dev], dtype=bool)
    history: list[dict[str, float]] = []
    best_eer, best_weights, stale = np.inf, model.get_weights(), 0
    for epoch in range(1, config.epochs + 1):
        started = time.monotonic()
        chosen = capped_selection(train, config.spoof_cap, config.bonafide_cap, rng)
        rng.shuffle(chosen)
        weights = _class_weights(labels[chosen])
        losses = []
        for start in range(0, len(chosen), config.batch):
            members = chosen[start:start + config.batch]
            x, mask = _batch([train_clips[i] for i in members], CROP_FRAMES, norm, rng)
            losses.append(float(model.train_on_batch(
                [x, mask], labels[members].astype(np.float32)[:, None],
                sample_weight=weights[start:start + len(members)])))
        scores = score_clips(model, dev_clips, norm)
        eer = equal_error_rate(scores[~dev_labels], scores[dev_labels]).eer
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "dev_eer": eer,
                        "clips": len(chosen), "seconds": time.monotonic() - started})
        log(f"epoch {epoch}: loss {np.mean(losses):.4f}, dev EER {eer:.2%} "
            f"({time.monotonic() - started:.0f} s)")
        if eer < best_eer - 1e-4:
            best_eer, best_weights, stale = eer, model.get_weights(), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.set_weights(best_weights)
    return model, norm, history


def save_frame_head(out_dir: Path, model, norm: tuple[np.ndarray, np.ndarray],
                    config: FrameHeadConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / MODEL_FILE) as temporary:
        model.save_weights(temporary)
    with atomic_output(out_dir / NORM_FILE) as temporary:
        np.savez(temporary, mean=norm[0], scale=norm[1])
    write_text_atomically(out_dir / CONFIG_FILE, json.dumps(asdict(config), indent=1) + "\n")


def load_frame_head(out_dir: Path):
    data = json.loads((out_dir / CONFIG_FILE).read_text())
    config = FrameHeadConfig(**{**data, "layers": tuple(data["layers"])})
    with np.load(out_dir / NORM_FILE) as stored:
        norm = stored["mean"], stored["scale"]
    model = build_frame_head(len(norm[0]), config)
    model.load_weights(out_dir / MODEL_FILE)
    return model, norm, config


def split_frames(pairs: Sequence[tuple[str, str]], cache_dir: Path,
                 layers: Sequence[int]) -> tuple[list[Utterance], list[np.ndarray]]:
    utterances: list[Utterance] = []
    clips: list[np.ndarray] = []
    for root, split in pairs:
        found, folder = layer_split(Path(root), split, cache_dir)
        utterances += found
        clips += flat_frames(load_frames(folder, len(found), layers))
    return utterances, clips
