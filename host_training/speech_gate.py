"""The speech gate: a tiny int8 CNN that says whether a window holds speech at all.

Speech is every clip of the training corpora (bona fide and spoofed alike: both are speech);
"no speech" is the set `edge-train gate data` builds (``host_training.nonspeech``). Features
come from the board's own front end: the detector's STFT (same rate, n_fft, window, hop), pooled
into the gate's own 32 mel bands, so on the board the gate costs a matrix product and a small
network per window, not a second FFT pass.

The gate is independent of the detector's weights: it is trained, exported and carded on its
own (``edge_runtime/models/speech_gate.tflite`` + ``.json``, role ``speech_presence``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic import write_text_atomically
from edge_runtime.frontend import STFT_FIELDS, Frontend, FrontendConfig
from edge_runtime.model import ROLE_SPEECH, ModelCard, SpeechModel, TensorQuantization, sha256_of
from host_training.augment import coloured_noise
from host_training.features import random_window
from host_training.model import save_model

GATE_BANDS = 32
GATE_FMIN = 50.0
SHORT_CROP_SECONDS = (0.3, 1.5)  # letters and digits are this short
MAX_TRAIN_FRR = 0.005  # the threshold keeps at most this share of validation speech out
# Share of each corpus's train split held out of gate training as validation speech (by file
# name): the epoch and the threshold are chosen on it, never on a dev or eval split.
SPEECH_VAL_SHARE = 0.15
# The dev splits of this many corpora (the first ones given: spoofmix) join validation speech.
SELECTION_DEV_CORPORA = 1


def gate_frontend_config(detector: FrontendConfig) -> FrontendConfig:
    """The gate's features: the detector's framing, its own mel bands, window-mean normalised."""
    shared = {name: getattr(detector, name) for name in STFT_FIELDS}
    return FrontendConfig(**shared, n_bands=GATE_BANDS, fmin=GATE_FMIN,
                          fmax=detector.sample_rate / 2, scale="mel",
                          normalization="window_mean")


@dataclass(frozen=True)
class GateModelConfig:
    time_pool: int = 2  # average pairs of 10 ms frames first: speech presence needs no finer
    # The shipped gate's: chosen on validation against (8, 16, 24, 32) / 16 and others
    # (speech_gate.md).
    channels: tuple[int, ...] = (12, 24, 32, 48)
    dense_units: int = 24


@dataclass(frozen=True)
class GateTrainConfig:
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 3e-3
    seed: int = 0
    speech_windows_per_clip: int = 1
    nonspeech_windows_per_clip: int = 2
    short_crop_prob: float = 0.35
    noisy_speech_prob: float = 0.3  # speech over noise or music is still speech
    # Non-speech played faster or slower (pitch with it), as a varispeed would: a sound effect
    # at another pitch is still no speech, and the set has few of each kind of sound.
    nonspeech_stretch_prob: float = 0.3
    nonspeech_stretch: tuple[float, float] = (0.7, 1.4)
    average_low_rate_epochs: bool = True  # also try the mean weights of the low-rate half
    model: GateModelConfig = GateModelConfig()


def build_gate_model(input_shape: tuple[int, int], config: GateModelConfig):
    """A few-k-parameter CNN: strided 3x3 convolutions, global average, sigmoid."""
    import keras
    from keras import layers

    inputs = keras.Input((*input_shape, 1))
    x = layers.AveragePooling2D((config.time_pool, 1))(inputs)
    for index, filters in enumerate(config.channels):
        strides = (2, 2) if index < len(config.channels) - 1 else (2, 1)
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(config.dense_units, activation="relu")(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="speech_gate")


# --- data ---------------------------------------------------------------------------------

def _mix(speech: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    if background.shape[0] < speech.shape[0]:
        background = np.resize(background, speech.shape[0])
    background = background[: speech.shape[0]]
    ps = float(np.mean(speech.astype(np.float64) ** 2)) + 1e-12
    pb = float(np.mean(background.astype(np.float64) ** 2)) + 1e-12
    return (speech + background * np.sqrt(ps / pb / 10 ** (snr_db / 10))).astype(np.float32)


def _varispeed(wave: np.ndarray, rate: float) -> np.ndarray:
    """``wave`` played ``rate`` times faster (linear interpolation: fine for a training view)."""
    positions = np.arange(0.0, wave.shape[0] - 1, rate)
    if positions.shape[0] < 2:
        return wave
    return np.interp(positions, np.arange(wave.shape[0]), wave).astype(np.float32)


def _crop_windows(waves: list[np.ndarray], frontend: Frontend, config: GateTrainConfig,
                  rng: np.random.Generator, per_clip: int,
                  vary: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``per_clip`` feature windows of each clip, ``vary`` applied first: whole-clip or short
    random crops (short ones repeat-padded, as the board pads short clips)."""
    rate = frontend.config.sample_rate
    window = frontend.config.window_samples
    short = (int(SHORT_CROP_SECONDS[0] * rate), int(SHORT_CROP_SECONDS[1] * rate))
    out = np.empty((len(waves) * per_clip, *frontend.config.feature_shape), dtype=np.float16)
    row = 0
    for wave in waves:
        for _ in range(per_clip):
            audio = vary(wave)
            crop = short if rng.random() < config.short_crop_prob else None
            out[row] = frontend.window_features(random_window(audio, window, rng, crop))
            row += 1
    return out


def speech_windows(waves: list[np.ndarray], frontend: Frontend, config: GateTrainConfig,
                   rng: np.random.Generator, backgrounds: list[np.ndarray],
                   per_clip: int) -> np.ndarray:
    """Feature windows of speech clips: whole-clip crops, short crops, some over noise/music."""

    def over_background(wave: np.ndarray) -> np.ndarray:
        if rng.random() >= config.noisy_speech_prob:
            return wave
        if backgrounds and rng.random() < 0.5:
            background = backgrounds[int(rng.integers(len(backgrounds)))]
        else:
            background = coloured_noise(wave.shape[0], float(rng.uniform(0, 2)), rng)
        return _mix(wave, background, float(rng.uniform(5.0, 30.0)))

    return _crop_windows(waves, frontend, config, rng, per_clip, over_background)


def nonspeech_windows(waves: list[np.ndarray], frontend: Frontend, config: GateTrainConfig,
                      rng: np.random.Generator, per_clip: int) -> np.ndarray:
    """Feature windows of non-speech clips; some are two of them mixed (still no speech)."""

    def mixed(wave: np.ndarray) -> np.ndarray:
        if rng.random() < config.nonspeech_stretch_prob:
            wave = _varispeed(wave, float(np.exp(rng.uniform(*np.log(config.nonspeech_stretch)))))
        if rng.random() >= 0.2:
            return wave
        other = waves[int(rng.integers(len(waves)))]
        return _mix(wave, other, float(rng.uniform(-10.0, 10.0)))

    return _crop_windows(waves, frontend, config, rng, per_clip, mixed)


def clip_windows_of(waves: list[np.ndarray], frontend: Frontend
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Every window the board's gate scores (``GateSchedule``: digital silence skipped), each
    one's clip index, and the clip count: scoring them in batches is much cheaper than clip by
    clip."""
    from edge_runtime.audio import split_windows
    from edge_runtime.clip import CLIP_HOP_FRACTION, has_signal
    from edge_runtime.speech_presence import GateSchedule, gate_stride

    window = frontend.config.window_samples
    hop = max(1, int(window * CLIP_HOP_FRACTION))  # as ClipScorer cuts a clip
    features, owners = [], []
    for index, wave in enumerate(waves):
        schedule = GateSchedule(gate_stride(window, hop))
        chunks = split_windows(wave, window, hop)
        for number, chunk in enumerate(chunks):
            if not has_signal(chunk):
                schedule.skip()
            elif schedule.due(last=number == len(chunks) - 1):
                features.append(frontend.window_features(chunk).astype(np.float16))
                owners.append(index)
    shape = (0, *frontend.config.feature_shape)
    stacked = np.stack(features) if features else np.zeros(shape, np.float16)
    return stacked, np.asarray(owners, dtype=np.int64), len(waves)


def clip_means(window_scores: np.ndarray, owners: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean speech probability per clip (0 for a clip without a window with signal)."""
    sums = np.bincount(owners, weights=window_scores, minlength=n_clips)
    counts = np.bincount(owners, minlength=n_clips)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def clip_speech_scores(score_window: Callable[[np.ndarray], float], waves: list[np.ndarray],
                       frontend: Frontend) -> np.ndarray:
    """Mean speech probability per clip over the windows the board scores."""
    features, owners, count = clip_windows_of(waves, frontend)
    scores = np.array([score_window(f.astype(np.float32)) for f in features])
    return clip_means(scores, owners, count)


def choose_threshold(speech: np.ndarray, nonspeech: np.ndarray,
                     max_frr: float = MAX_TRAIN_FRR) -> tuple[float, str]:
    """The speech threshold: in the gap between non-speech and speech where there is one.

    The highest threshold that keeps at most ``max_frr`` of validation speech out is the bound; if
    every validation non-speech clip scores below it, the threshold sits in the middle of the
    gap, otherwise at the bound (and the validation false accepts are reported).
    """
    bound = float(np.quantile(speech, max_frr, method="lower"))
    top_nonspeech = float(np.max(nonspeech))
    if top_nonspeech < bound:
        return (top_nonspeech + bound) / 2, (
            f"middle of the gap between the highest validation non-speech clip "
            f"({top_nonspeech:.4f}) and the {max_frr:.1%} validation speech quantile ({bound:.4f})")
    return bound, f"{max_frr:.1%} quantile of validation speech clip scores (gap closed)"


# --- training -----------------------------------------------------------------------------

@dataclass
class GateData:
    train_x: np.ndarray  # float16 feature windows: half the memory, features lose nothing
    train_y: np.ndarray
    val_speech: list[np.ndarray]
    val_nonspeech: list[np.ndarray]
    train_nonspeech_count: int
    train_speech_count: int


def speech_part(path: Path) -> str:
    """"train" or "val" for a clip of a corpus's train split, fixed by its file name: the gate's
    selection speech comes from the train splits, so every dev and eval split stays unseen."""
    from host_training.nonspeech import file_split

    held_out = file_split(Path(path.name + "#gate-val"), test_share=SPEECH_VAL_SHARE) == "test"
    return "val" if held_out else "train"


def _load_speech(roots: list[Path], part: str, rate: int, cache_dir: Path | None,
                 log: Callable[[str], None]) -> list[np.ndarray]:
    """Speech clips of the corpora's train splits: the training part or the validation part
    (``speech_part``)."""
    from host_training.datasets import load_split
    from host_training.waveforms import load_waveforms

    waves: list[np.ndarray] = []
    for root in roots:
        utterances = load_split(root, "train")
        chosen = [index for index, u in enumerate(utterances)
                  if speech_part(Path(u.path)) == part]
        log(f"  {root} train, {part} part: {len(chosen)} of {len(utterances)} speech clips")
        # Decoded once for the whole split (the cache is keyed by the clip list), then picked.
        every = load_waveforms(utterances, rate, cache_dir)
        waves += [every[index] for index in chosen]
        del every
    return waves


def _load_nonspeech(root: Path, rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Train-split non-speech clips, minus a validation share (whole source files)."""
    from host_training.nonspeech import file_split, read_manifest
    from host_training.waveforms import load_clip

    train, val = [], []
    for clip in read_manifest(root, "train"):
        source = Path(clip.source.split(" (")[0]) if clip.kind in ("music", "sfx") else clip.path
        # A second hash cut of the training files: 15 % validation, never the test set.
        held_out = file_split(Path(source.name + "#val"), test_share=0.15) == "test"
        (val if held_out else train).append(load_clip(clip.path, rate))
    return train, val


def load_selection_sets(speech_roots: list[Path], nonspeech_root: Path, rate: int,
                        cache_dir: Path | None, log: Callable[[str], None]
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validation speech and validation non-speech: model selection and the threshold use these.

    Validation speech is the held-out part of every corpus's train split and the dev split of
    the first corpus (spoofmix: its many spoken letters and digits are the hardest speech for
    the gate). The extra corpus's dev split is left out: it is the detector's selection split
    and one of the sets the gate is measured on, with spoofmix eval."""
    from host_training.datasets import load_split
    from host_training.waveforms import load_waveforms

    log("loading speech (validation part of the train splits, and spoofmix dev)")
    val_speech = _load_speech(speech_roots, "val", rate, cache_dir, log)
    for root in speech_roots[:SELECTION_DEV_CORPORA]:
        utterances = load_split(root, "dev")
        log(f"  {root} dev: {len(utterances)} speech clips")
        val_speech += load_waveforms(utterances, rate, cache_dir)
    _, val_nonspeech = _load_nonspeech(nonspeech_root, rate)
    return val_speech, val_nonspeech


def prepare_data(detector: FrontendConfig, speech_roots: list[Path], nonspeech_root: Path,
                 config: GateTrainConfig, cache_dir: Path | None,
                 log: Callable[[str], None] = print) -> GateData:
    """Training windows (cached in ``cache_dir``: computing them is most of a run's time on a
    shared machine) and the selection sets."""
    frontend = Frontend(gate_frontend_config(detector))
    rate = frontend.config.sample_rate
    key = _features_key(frontend.config, speech_roots, nonspeech_root, config)
    cached = cache_dir / f"gate-features-{key}.npz" if cache_dir is not None else None
    if cached is not None and cached.exists():
        log(f"training windows from {cached}")
        with np.load(cached) as stored:
            x, y = stored["x"], stored["y"]
            counts = stored["counts"]
        val_speech, val_nonspeech = load_selection_sets(speech_roots, nonspeech_root, rate,
                                                        cache_dir, log)
        return GateData(x, y, val_speech, val_nonspeech, int(counts[1]), int(counts[0]))
    data = _compute_data(frontend, speech_roots, nonspeech_root, config, cache_dir, log)
    if cached is not None:
        temporary = cached.with_suffix(".tmp.npz")
        np.savez(temporary, x=data.train_x, y=data.train_y,
                 counts=np.array([data.train_speech_count, data.train_nonspeech_count]))
        temporary.replace(cached)
    return data


def _features_key(gate: FrontendConfig, speech_roots: list[Path], nonspeech_root: Path,
                  config: GateTrainConfig) -> str:
    import hashlib

    manifest = nonspeech_root / "manifest.tsv"
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else 0
    text = json.dumps([gate.to_dict(), [str(r) for r in speech_roots], str(nonspeech_root),
                       stamp, {k: v for k, v in asdict(config).items()
                               if k not in ("epochs", "batch_size", "learning_rate", "model",
                                             "average_low_rate_epochs")}])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _compute_data(frontend: Frontend, speech_roots: list[Path], nonspeech_root: Path,
                  config: GateTrainConfig, cache_dir: Path | None,
                  log: Callable[[str], None]) -> GateData:
    rate = frontend.config.sample_rate
    rng = np.random.default_rng(config.seed)
    log("loading non-speech")
    nonspeech, _ = _load_nonspeech(nonspeech_root, rate)
    backgrounds = [w for w in nonspeech if w.shape[0] > rate]
    log("loading speech (train)")
    speech = _load_speech(speech_roots, "train", rate, cache_dir, log)  # the training part
    log(f"computing features: {len(speech)} speech, {len(nonspeech)} non-speech clips")
    started = time.monotonic()
    speech_x = speech_windows(speech, frontend, config, rng, backgrounds,
                              config.speech_windows_per_clip)
    speech_count = len(speech)
    del speech  # the waves are the bulk of the memory; only the features are kept
    nonspeech_x = nonspeech_windows(nonspeech, frontend, config, rng,
                                    config.nonspeech_windows_per_clip)
    log(f"  {len(speech_x) + len(nonspeech_x)} windows in {time.monotonic() - started:.0f} s")
    x = np.concatenate([speech_x, nonspeech_x])
    y = np.concatenate([np.ones(len(speech_x)), np.zeros(len(nonspeech_x))]).astype(np.float32)
    del speech_x, nonspeech_x
    val_speech, val_nonspeech = load_selection_sets(speech_roots, nonspeech_root, rate,
                                                    cache_dir, log)
    return GateData(x, y, val_speech, val_nonspeech, len(nonspeech), speech_count)


REPRESENTATIVE_FILE = "representative.npy"  # int8 calibration windows saved for export


def train_gate(detector: FrontendConfig, speech_roots: list[Path], nonspeech_root: Path,
               run_dir: Path, config: GateTrainConfig | None = None,
               cache_dir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains the gate; writes ``best.keras``, ``config.json``, ``metrics.json`` and the
    representative windows export calibrates int8 with."""
    import keras

    config = config or GateTrainConfig()
    keras.utils.set_random_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    gate_config = gate_frontend_config(detector)
    frontend = Frontend(gate_config)
    data = prepare_data(detector, speech_roots, nonspeech_root, config, cache_dir, log)
    rng = np.random.default_rng(config.seed)
    chosen = rng.choice(len(data.train_y), size=min(600, len(data.train_y)), replace=False)
    np.save(run_dir / REPRESENTATIVE_FILE, data.train_x[np.sort(chosen)])
    write_text_atomically(run_dir / "config.json", json.dumps({
        "frontend": gate_config.to_dict(), "train": asdict(config),
        "speech_roots": [str(r) for r in speech_roots], "nonspeech_root": str(nonspeech_root),
    }, indent=2) + "\n")
    model = build_gate_model(gate_config.feature_shape, config.model)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="binary_crossentropy", metrics=["accuracy"])
    log(f"gate model: {model.count_params()} parameters, {len(data.train_y)} training windows")
    positives = float(data.train_y.mean())
    weights = np.where(data.train_y > 0.5, 0.5 / positives, 0.5 / (1 - positives))
    best: dict[str, Any] = {"score": None, "epoch": None}
    history = []
    val_speech_windows = clip_windows_of(data.val_speech, frontend)
    val_windows = clip_windows_of(data.val_nonspeech, frontend)

    def clip_scores(windows: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
        features, owners, count = windows
        scores = model.predict(features.astype(np.float32)[..., None], batch_size=256,
                               verbose=0)[:, 0]
        return clip_means(scores, owners, count)

    def consider(epoch: int | str, loss: float | None, seconds: float) -> None:
        """Scores the model as it is now; keeps it if it is the best so far."""
        nonlocal best
        speech = clip_scores(val_speech_windows)
        val = clip_scores(val_windows)
        threshold, _ = choose_threshold(speech, val)
        frr = float(np.mean(speech < threshold))
        far = float(np.mean(val >= threshold))
        # The margin between validation non-speech and validation speech (negative: they overlap).
        gap = float(np.quantile(speech, MAX_TRAIN_FRR, method="lower") - np.max(val))
        record = {"epoch": epoch, "loss": loss, "val_speech_frr": frr,
                  "val_nonspeech_far": far, "gap": gap, "seconds": round(seconds, 1)}
        history.append(record)
        log(f"epoch {epoch}: loss {loss if loss is not None else float('nan'):.4f}  gap "
            f"{gap:+.4f}  val speech FRR {frr:.2%}  val non-speech FAR {far:.2%}  "
            f"({record['seconds']} s)")
        # Selection: fewest validation non-speech clips passing, then the widest gap.
        score = (-far, gap)
        if best["epoch"] is None or score > best["score"]:
            best = {"score": score, "epoch": epoch}
            save_model(model, run_dir / "best.keras")
            np.save(run_dir / "val_scores.npy", val)  # which validation clips are hard
            np.save(run_dir / "val_speech_scores.npy", speech)

    swa: list[list[np.ndarray]] = []
    for epoch in range(1, config.epochs + 1):
        if epoch == config.epochs // 2 + 1:
            model.optimizer.learning_rate.assign(config.learning_rate / 4)
        order = rng.permutation(len(data.train_y))
        started = time.monotonic()
        losses = []
        # Batches are converted to float32 one at a time: a float32 copy of the whole set
        # would double the memory on a machine shared with other training.
        for first in range(0, len(order), config.batch_size):
            index = np.sort(order[first : first + config.batch_size])
            result = model.train_on_batch(data.train_x[index].astype(np.float32)[..., None],
                                          data.train_y[index], sample_weight=weights[index])
            losses.append(float(np.asarray(result).reshape(-1)[0]))
        if config.average_low_rate_epochs and epoch > config.epochs // 2:
            swa.append(model.get_weights())
        consider(epoch, float(np.mean(losses)), time.monotonic() - started)
    if len(swa) > 1:
        # The low-rate epochs' weights averaged (batch-norm statistics too): single epochs
        # swing by a percent of validation non-speech; their mean is steadier.
        model.set_weights([np.mean(layer, axis=0) for layer in zip(*swa, strict=True)])
        consider("swa", None, 0.0)
    summary = {
        "best_epoch": best["epoch"], "history": history,
        "train_windows": len(data.train_y),
        "train_speech_clips": data.train_speech_count,
        "train_nonspeech_clips": data.train_nonspeech_count,
        "val_speech_clips": len(data.val_speech),
        "val_nonspeech_clips": len(data.val_nonspeech),
    }
    write_text_atomically(run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary


# --- export -------------------------------------------------------------------------------

class GateExportError(RuntimeError):
    pass


ALLOWED_TENSOR_TYPES = {"int8", "int32"}


def export_gate(run_dir: Path, out_path: Path, cache_dir: Path | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """``run_dir/best.keras`` -> full-integer int8 ``out_path`` and its card (role
    speech_presence, threshold chosen on validation speech and non-speech)."""
    import keras

    from host_training.export import convert_int8, tensor_report
    from host_training.model_card import write_card

    stored = json.loads((run_dir / "config.json").read_text())
    gate_config = FrontendConfig.from_dict(stored["frontend"])
    train_config = stored["train"]
    config = GateTrainConfig(**{k: v for k, v in train_config.items() if k != "model"},
                             model=GateModelConfig(**{
                                 k: tuple(v) if isinstance(v, list) else v
                                 for k, v in train_config["model"].items()}))
    # metrics.json is written when training ends; a checkpoint of a run still going has none.
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {
        "note": "exported before training ended"}
    model = keras.models.load_model(run_dir / "best.keras")
    roots = [Path(r) for r in stored["speech_roots"]]
    val_speech, val_nonspeech = load_selection_sets(
        roots, Path(stored["nonspeech_root"]), gate_config.sample_rate, cache_dir, log)
    representative = np.load(run_dir / REPRESENTATIVE_FILE).astype(np.float32)
    log(f"converting to int8 with {len(representative)} representative windows")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # min / max ranges: the shipped gate's figures were measured with them (no tail cut).
    out_path.write_bytes(convert_int8(model, representative, outlier_share=0.0))
    report = tensor_report(out_path)
    stray = set(report["tensor_dtypes"]) - ALLOWED_TENSOR_TYPES
    if stray:
        raise GateExportError(f"{out_path}: tensors other than int8/int32 remain: {report}")

    from edge_runtime.model import interpreter_class

    interpreter_type, _ = interpreter_class()
    probe = interpreter_type(model_path=str(out_path))
    input_q = TensorQuantization(*probe.get_input_details()[0]["quantization"])
    output_q = TensorQuantization(*probe.get_output_details()[0]["quantization"])
    card_path = write_card(out_path, ModelCard(out_path.name, sha256_of(out_path), gate_config,
                                               input_q, output_q, 0.5, {"role": ROLE_SPEECH}))
    int8 = SpeechModel(out_path)
    threshold, source, validation = selection_threshold(int8, val_speech, val_nonspeech)

    def float_score(features: np.ndarray) -> float:
        return float(model(features[None, :, :, None], training=False)[0, 0])

    sample = representative[:200]
    float_scores = np.array([float_score(f) for f in sample])
    int8_scores = int8.score_windows(sample)
    extra = {
        "role": ROLE_SPEECH,
        "name": "edge-detect speech gate (speech / no speech)",
        "architecture": {"family": "strided CNN, global average", **asdict(config.model)},
        "parameters": int(model.count_params()),
        "size_bytes": out_path.stat().st_size,
        "tflite": report,
        "training": {"config": train_config, "frontend": gate_config.to_dict(),
                     "speech_roots": stored["speech_roots"],
                     "nonspeech_root": stored["nonspeech_root"], **metrics},
        "quantization": {
            "windows": len(sample),
            "max_abs_score_difference": float(np.max(np.abs(float_scores - int8_scores))),
            "mean_abs_score_difference": float(np.mean(np.abs(float_scores - int8_scores))),
        },
        "threshold_source": source,
        "validation": validation,
        "metrics": {},
    }
    card = ModelCard(out_path.name, sha256_of(out_path), gate_config, input_q, output_q,
                     threshold, extra)
    write_card(out_path, card)
    log(f"wrote {out_path} ({out_path.stat().st_size / 1024:.1f} KiB) and {card_path.name}; "
        f"threshold {threshold:.4f} ({source})")
    return card.to_dict()


def selection_threshold(gate: SpeechModel, val_speech: list[np.ndarray],
                        val_nonspeech: list[np.ndarray]) -> tuple[float, str, dict[str, Any]]:
    """The int8 gate's threshold on the selection sets (``choose_threshold``), its source and
    what it does there, as the card records them."""
    frontend = Frontend(gate.frontend_config)
    speech = clip_speech_scores(gate.score_window, val_speech, frontend)
    nonspeech = clip_speech_scores(gate.score_window, val_nonspeech, frontend)
    threshold, source = choose_threshold(speech, nonspeech)
    return threshold, source, {
        "val_speech_clips": len(speech), "val_speech_frr": float(np.mean(speech < threshold)),
        "val_nonspeech_clips": len(nonspeech),
        "val_nonspeech_far": float(np.mean(nonspeech >= threshold)),
        "val_nonspeech_max_score": float(np.max(nonspeech)),
    }


def rethreshold_gate(gate_path: Path, speech_roots: list[Path], nonspeech_root: Path,
                     cache_dir: Path | None, dev_only: bool,
                     log: Callable[[str], None] = print) -> tuple[float, str]:
    """Chooses an exported gate's threshold again on the selection sets and writes it on its
    card. ``dev_only``: validation speech is spoofmix dev alone, for a gate trained on whole
    train splits (before the validation slice of ``speech_part`` was held out)."""
    from edge_runtime.model import card_path_for
    from host_training.model_card import update_card

    gate = SpeechModel(gate_path)
    rate = gate.frontend_config.sample_rate
    if dev_only:
        from host_training.datasets import load_split
        from host_training.waveforms import load_waveforms

        _, val_nonspeech = _load_nonspeech(nonspeech_root, rate)
        val_speech = []
        for root in speech_roots[:SELECTION_DEV_CORPORA]:
            val_speech += load_waveforms(load_split(root, "dev"), rate, cache_dir)
    else:
        val_speech, val_nonspeech = load_selection_sets(speech_roots, nonspeech_root, rate,
                                                        cache_dir, log)
    threshold, source, validation = selection_threshold(gate, val_speech, val_nonspeech)
    if dev_only:
        source += " (validation speech: spoofmix dev alone)"
    card_path = card_path_for(gate_path)
    update_card(gate_path, threshold=threshold, threshold_source=source, validation=validation)
    log(f"{card_path}: threshold {threshold:.4f} ({source}); validation {validation}")
    return threshold, source
