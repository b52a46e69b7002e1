"""`python -m host_training.speaker_build`: Resemblyzer's encoder -> TFLite (int8 weights) + card.

Steps, each checked: the Keras rebuild against the NumPy reference (float), the conversion
(every weight matrix int8), the TFLite clip embeddings against the float reference (cosine),
then the speaker threshold at the target false-accept rate on the SASV trials' non-target trials
(``host_training.sasv_trials``), with SV-EER, stored on the card.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from edge_runtime.audio import load_audio
from edge_runtime.errors import AudioError
from edge_runtime.metrics import equal_error_rate
from edge_runtime.owners import enrolment_embedding
from edge_runtime.speaker import DEFAULT_SPEAKER_MODEL_NAME, SpeakerEmbedder
from edge_runtime.speaker_frontend import EMBEDDER_FRONTEND, SpeakerFrontend
from host_training.model_card import write_card
from host_training.sasv_trials import (
    DEFAULT_SOURCES,
    FAR_TARGETS,
    NONTARGET,
    TARGET,
    build_trials,
    is_one_person,
    read_sources,
    threshold_at_far,
)
from host_training.speaker_export import (
    build_keras_embedder,
    card_dict,
    convert_int8_weights,
    float_weight_tensors,
)
from host_training.speaker_weights import load_weights, reference_embeddings


def log(message: str) -> None:
    print(f"speaker-build: {message}", file=sys.stderr, flush=True)



def probe_partials(count: int, seed: int) -> np.ndarray:
    """Partials of bona fide clips that no trial uses (many-voice demo pages, short clips)."""
    frontend = SpeakerFrontend()
    utterances = [u for u in read_sources(DEFAULT_SOURCES)
                  if not u.is_spoof and not is_one_person(u.speaker)]
    random.Random(seed).shuffle(utterances)
    partials: list[np.ndarray] = []
    for utterance in utterances:
        try:
            partials.extend(frontend.partials(load_audio(utterance.path)))
        except AudioError:
            continue
        if len(partials) >= count:
            break
    return np.stack(partials[:count])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("edge_runtime/models"))
    parser.add_argument("--far", type=float, default=0.01,
                        help="false-accept rate on non-target trials that sets the threshold")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    weights = load_weights()
    frames, bands = EMBEDDER_FRONTEND.feature_shape
    probe = probe_partials(200, args.seed)
    band_scale = (probe.mean(axis=(0, 1)) + 1e-6).astype(np.float32)
    log(f"building the Keras model ({frames} frames x {bands} bands)")
    model = build_keras_embedder(weights, frames, bands, band_scale)
    probe = probe[:8]
    keras_out = np.asarray(model(probe[..., None], training=False))
    reference = reference_embeddings(weights, probe)
    float_error = float(np.max(np.abs(keras_out - reference)))
    log(f"Keras vs NumPy reference: max abs difference {float_error:.2e}")
    if float_error > 1e-3:
        raise SystemExit("the Keras rebuild does not reproduce the reference; not exporting")

    log("converting (int8 weights)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / DEFAULT_SPEAKER_MODEL_NAME
    path.write_bytes(convert_int8_weights(model))
    left_float = float_weight_tensors(path)
    if left_float:
        path.unlink()
        raise SystemExit(f"weight matrices left float: {', '.join(left_float[:5])}")
    from edge_runtime.model import interpreter_class

    interpreter = interpreter_class()[0](model_path=str(path))
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    write_card(path, card_dict(path, 0.5, SpeakerFrontend().speaker, {}))

    log("embedding the SASV trials with the int8 model (board code)")
    embedder = SpeakerEmbedder(path)
    trials = build_trials(read_sources(DEFAULT_SOURCES))
    clips = sorted({p for ps in trials.enrolment.values() for p in ps}
                   | {t.utterance.path for t in trials.trials if t.kind != "spoof"})
    embeddings: dict[Path, np.ndarray] = {}
    cosines: list[float] = []
    timing = 0.0
    partial_count = 0
    for index, clip in enumerate(clips):
        audio = load_audio(clip)
        t0 = time.perf_counter()
        embeddings[clip] = embedder.embed(audio)
        timing += time.perf_counter() - t0
        if index % 8 == 0:  # the float reference on every 8th clip (it is slow in NumPy)
            partials = embedder.frontend.partials(audio)
            partial_count += len(partials)
            raw = reference_embeddings(weights, partials)
            raw /= np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12
            mean = raw.mean(axis=0)
            cosines.append(float(embeddings[clip] @ (mean / np.linalg.norm(mean))))
        if index % 100 == 0:
            log(f"{index}/{len(clips)} clips")
    enrolled = {s: enrolment_embedding([embeddings[p] for p in ps])
                for s, ps in trials.enrolment.items()}
    scores: dict[str, list[float]] = {TARGET: [], NONTARGET: []}
    for trial in trials.trials:
        if trial.kind in scores:
            embedding = embeddings[trial.utterance.path]
            scores[trial.kind].append(float(enrolled[trial.speaker] @ embedding))
    target, nontarget = np.array(scores[TARGET]), np.array(scores[NONTARGET])
    sv = equal_error_rate(-target, -nontarget)
    thresholds = {str(far): threshold_at_far(nontarget, far) for far in FAR_TARGETS}
    threshold = threshold_at_far(nontarget, args.far)
    frr = {far: float(np.mean(target < value)) for far, value in thresholds.items()}
    extra = {
        "name": "edge-detect speaker embedder (Resemblyzer GE2E, int8)",
        "source": {"package": "resemblyzer 0.1.4 (PyPI, Apache-2.0)", "file": "pretrained.pt",
                   "architecture": "GE2E speaker encoder: 3 x LSTM(256) on 40 mel power bands, "
                                   "Linear(256) + ReLU; unrolled for int8"},
        "embedding_size": int(embedder.embedding_size),
        "band_scale": [round(float(v), 6) for v in band_scale],
        "size_bytes": path.stat().st_size,
        "tflite": {"ops": ops,
                   "weights": "every weight matrix int8 (checked at export); activations "
                              "float32: full int8 loses the voice (docs/owner.md)"},
        "threshold_far": args.far,
        "thresholds_at_far": thresholds,
        "tflite_vs_float": {"clips": len(cosines), "partials": partial_count,
                          "cosine_mean": round(float(np.mean(cosines)), 5),
                          "cosine_min": round(float(np.min(cosines)), 5)},
        "metrics": {"sasv_trials": {
            "speakers": len(trials.enrolment), "target": len(target),
            "nontarget": len(nontarget), "sv_eer": round(sv.eer, 5),
            "frr_at_far": {far: round(v, 5) for far, v in frr.items()},
            "seconds_per_clip": round(timing / len(clips), 5)}},
    }
    write_card(path, card_dict(path, threshold, embedder.frontend.speaker, extra))
    log(f"wrote {path} ({path.stat().st_size} bytes): SV-EER {sv.eer * 100:.2f} %, threshold "
        f"{threshold:.4f} at FAR {args.far}, TFLite vs float cosine mean {np.mean(cosines):.4f} "
        f"min {np.min(cosines):.4f}")


if __name__ == "__main__":
    main()
