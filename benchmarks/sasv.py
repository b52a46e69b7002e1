"""Spoofing-aware speaker verification (SASV), ASVspoof 5 style, on the corpus trials.

    python benchmarks/sasv.py [--out benchmarks/results/sasv.json] [--max-partials N]

Trials come from ``host_training.sasv_trials`` (target, non-target, spoof aimed at the target).
Every clip is judged by the board's own code: the detector with its speech gate
(``edge_runtime.clip.ClipScorer``) and the speaker embedder (``edge_runtime.speaker``); owners
are enrolled as ``edge-detect enrol`` does (``edge_runtime.owners.enrolment_embedding``).

Three systems, three EERs each (a positive is a target trial):

- detector alone: score = 1 - spoof probability;
- embedder alone: score = cosine similarity to the enrolled speaker;
- both, as the lock decides: the detector gates at its card threshold (spoof or no speech is
  rejected), the similarity is swept;
- two references that are not the lock's rule: a sum of z-scores of both, and the embedder's
  similarity after AS-norm against a cohort of voices in no trial (``--cohort``).

SV-EER: target vs non-target; SPF-EER: target vs spoof; SASV-EER: target vs both. The report
also gives the error rates at the shipped operating point (both card thresholds) and the
embedder's cost per partial beside the detector's per window (CPU ms, MACs, RSS).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_runtime.audio import load_audio  # noqa: E402
from edge_runtime.clip import ClipScorer  # noqa: E402
from edge_runtime.machine import current_rss_bytes  # noqa: E402
from edge_runtime.macs import read_graph  # noqa: E402
from edge_runtime.metrics import equal_error_rate  # noqa: E402
from edge_runtime.model import SpoofModel  # noqa: E402
from edge_runtime.owners import enrolment_embedding  # noqa: E402
from edge_runtime.speaker import SpeakerEmbedder, cosine  # noqa: E402
from edge_runtime.speaker_frontend import SpeakerFrontend  # noqa: E402
from edge_runtime.speech_presence import BONAFIDE, SpeechPresence  # noqa: E402
from host_training.sasv_trials import (  # noqa: E402
    DEFAULT_SOURCES,
    NONTARGET,
    SPOOF,
    TARGET,
    build_trials,
    read_sources,
)

# Multiply-accumulates of one 1.6 s partial: 3 LSTM layers of 256 units over 160 frames
# (4 gates x units x (inputs + units) per frame) and the Linear(256, 256). Counted here, not
# by edge_runtime.macs: the LSTMs run inside WHILE subgraphs, which that reader does not walk.
LSTM_INPUTS = (40, 256, 256)


def embedder_macs(frames: int = 160, units: int = 256) -> int:
    per_frame = sum(4 * units * (inputs + units) for inputs in LSTM_INPUTS)
    return frames * per_frame + units * units


def log(message: str) -> None:
    print(f"sasv: {message}", file=sys.stderr, flush=True)


def eer(positive: list[float], negative: list[float]) -> float | None:
    """EER (%) with higher scores meaning "accept"; None without both kinds of trial."""
    if not positive or not negative:
        return None
    # metrics.equal_error_rate expects "higher = spoof", so negate.
    return round(100 * equal_error_rate(-np.asarray(positive), -np.asarray(negative)).eer, 2)


def three_eers(scores: dict[str, list[float]]) -> dict[str, float | None]:
    return {"sv_eer": eer(scores[TARGET], scores[NONTARGET]),
            "spf_eer": eer(scores[TARGET], scores[SPOOF]),
            "sasv_eer": eer(scores[TARGET], scores[NONTARGET] + scores[SPOOF])}


def cost(embedder: SpeakerEmbedder, detector: SpoofModel, repeats: int = 30) -> dict[str, float]:
    """Median CPU milliseconds of one embedder partial and one detector window (this thread)."""
    rng = np.random.default_rng(0)
    partial = np.abs(rng.normal(size=embedder.card.frontend.feature_shape)).astype(np.float32)
    window = rng.normal(size=detector.card.frontend.feature_shape).astype(np.float32)
    result = {}
    for name, run in (("embedder_partial_cpu_ms", lambda: embedder.embed_partial(partial)),
                      ("detector_window_cpu_ms", lambda: detector.score_window(window))):
        run()
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            run()
            times.append(time.thread_time() - start)
        result[name] = round(1000 * float(np.median(times)), 3)
    return result


def as_norm(score: float, enrolled: np.ndarray, test: np.ndarray, cohort: np.ndarray,
            top: int) -> float:
    """Adaptive symmetric score normalisation against the ``top`` closest cohort voices."""
    def stats(vector: np.ndarray) -> tuple[float, float]:
        closest = np.sort(cohort @ vector)[-top:]
        return float(closest.mean()), float(closest.std()) + 1e-9

    (mean_e, std_e), (mean_t, std_t) = stats(enrolled), stats(test)
    return 0.5 * ((score - mean_e) / std_e + (score - mean_t) / std_t)


def cohort_embeddings(embedder: SpeakerEmbedder, count: int, seed: int = 0) -> np.ndarray:
    """Embeddings of ``count`` bona fide clips of voices in no trial (many-voice demo pages)."""
    import random

    from host_training.sasv_trials import duration_seconds, is_one_person

    clips = [u.path for u in read_sources(DEFAULT_SOURCES)
             if not u.is_spoof and not is_one_person(u.speaker)]
    random.Random(seed).shuffle(clips)
    vectors = []
    for clip in clips:
        if duration_seconds(clip) >= 1.0:
            vectors.append(embedder.embed(load_audio(clip), str(clip)))
        if len(vectors) >= count:
            break
    return np.stack(vectors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SASV trials: SV-, SPF- and SASV-EER.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sasv.json")
    parser.add_argument("--speaker-model", type=Path, default=None)
    parser.add_argument("--max-partials", type=int, default=None,
                        help="override the card's partials per clip (cost vs accuracy)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cohort", type=int, default=200,
                        help="clips in the AS-norm cohort (0: no AS-norm figures)")
    parser.add_argument("--scores", type=Path, default=None,
                        help="also write every trial's scores here (TSV)")
    args = parser.parse_args(argv)

    rss_start = current_rss_bytes()
    detector = SpoofModel(num_threads=args.threads)
    speech = SpeechPresence.load(detector.frontend_config, num_threads=args.threads)
    scorer = ClipScorer(detector, speech=speech)
    rss_detector = current_rss_bytes()
    embedder = SpeakerEmbedder(args.speaker_model, num_threads=args.threads)
    if args.max_partials is not None:
        embedder.frontend = SpeakerFrontend(
            embedder.card.frontend,
            replace(embedder.frontend.speaker, max_partials=args.max_partials))
    embedder.embed_partial(np.zeros(embedder.card.frontend.feature_shape, dtype=np.float32))
    rss_embedder = current_rss_bytes()

    trials = build_trials(read_sources(DEFAULT_SOURCES))
    log(f"{len(trials.enrolment)} speakers; "
        + ", ".join(f"{trials.count(k)} {k}" for k in (TARGET, NONTARGET, SPOOF)))
    clips = sorted({p for ps in trials.enrolment.values() for p in ps}
                   | {t.utterance.path for t in trials.trials})
    spoof_score: dict[Path, float] = {}
    label: dict[Path, str] = {}
    embedding: dict[Path, np.ndarray | None] = {}
    embed_seconds = 0.0
    partials = 0
    for index, clip in enumerate(clips):
        audio = load_audio(clip)
        result = scorer.score_audio(audio, str(clip))
        spoof_score[clip] = 1.0 if result.score is None else result.score
        label[clip] = result.label
        start = time.thread_time()
        try:
            embedding[clip] = embedder.embed(audio, str(clip))
        except Exception:  # a clip the embedder cannot describe never matches
            embedding[clip] = None
        embed_seconds += time.thread_time() - start
        partials += len(embedder.frontend.partials(audio))
        if index % 100 == 0:
            log(f"{index}/{len(clips)} clips")

    enrolled = {s: enrolment_embedding([embedding[p] for p in ps if embedding[p] is not None])
                for s, ps in trials.enrolment.items()}
    refused = [str(p) for ps in trials.enrolment.values() for p in ps if label[p] != BONAFIDE]
    systems: dict[str, dict[str, list[float]]] = {
        name: {TARGET: [], NONTARGET: [], SPOOF: []} for name in ("detector", "embedder", "both")}
    # The detector trained on the corpora's train splits: spoof trials from dev / eval splits
    # are the ones it never saw.
    held_out: dict[str, dict[str, list[float]]] = {
        name: {TARGET: [], NONTARGET: [], SPOOF: []} for name in ("detector", "embedder", "both")}
    at_point = {TARGET: [], NONTARGET: [], SPOOF: []}
    rows = ["speaker\tclip\tkind\tsystem\tsplit\tspoof_score\tlabel\tsimilarity"]
    spoof_accepted: Counter[str] = Counter()
    spoof_total: Counter[str] = Counter()
    for trial in trials.trials:
        clip = trial.utterance.path
        similarity = (-1.0 if embedding[clip] is None
                      else cosine(embedding[clip], enrolled[trial.speaker]))
        gate = label[clip] == BONAFIDE
        unseen = trial.kind != SPOOF or clip.parent.parent.name in ("dev", "eval")
        rows.append(f"{trial.speaker}\t{clip.name}\t{trial.kind}\t{trial.utterance.system}\t"
                    f"{clip.parent.parent.name}\t{spoof_score[clip]:.6f}\t{label[clip]}\t"
                    f"{similarity:.6f}")
        for table in (systems, held_out) if unseen else (systems,):
            table["detector"][trial.kind].append(1.0 - spoof_score[clip])
            table["embedder"][trial.kind].append(similarity)
            table["both"][trial.kind].append(similarity if gate else -2.0)
        accepted = gate and similarity >= embedder.threshold
        at_point[trial.kind].append(float(accepted))
        if trial.kind == SPOOF:
            spoof_total[trial.utterance.system] += 1
            spoof_accepted[trial.utterance.system] += int(accepted)

    normalised: dict[str, list[float]] = {TARGET: [], NONTARGET: [], SPOOF: []}
    if args.cohort:
        log(f"AS-norm cohort of {args.cohort} clips")
        cohort = cohort_embeddings(embedder, args.cohort)
        for trial in trials.trials:
            vector = embedding[trial.utterance.path]
            if vector is None:
                normalised[trial.kind].append(-1e9)
                continue
            owner = enrolled[trial.speaker]
            normalised[trial.kind].append(
                as_norm(float(owner @ vector), owner, vector, cohort, top=100))
    # A score-level reference, not the lock's rule: z-scores of similarity and bona-fideness
    # (normalised on the negative trials, so mildly optimistic), summed.
    fused: dict[str, list[float]] = {TARGET: [], NONTARGET: [], SPOOF: []}
    negatives = {name: np.array(scores[NONTARGET] + scores[SPOOF]) for name, scores in
                 systems.items()}
    for kind in fused:
        sim = (np.array(systems["embedder"][kind]) - negatives["embedder"].mean()) \
            / negatives["embedder"].std()
        bona = (np.array(systems["detector"][kind]) - negatives["detector"].mean()) \
            / negatives["detector"].std()
        fused[kind] = list(sim + bona)
    report = {
        "trials": {"speakers": len(trials.enrolment),
                   **{k: trials.count(k) for k in (TARGET, NONTARGET, SPOOF)},
                   "enrolment_clips": sum(len(v) for v in trials.enrolment.values()),
                   "enrolment_clips_the_detector_refuses": len(refused)},
        "eer_percent": {**{name: three_eers(scores) for name, scores in systems.items()},
                        "both_score_sum": three_eers(fused),
                        **({"embedder_as_norm": three_eers(normalised)} if args.cohort else {})},
        "eer_percent_unseen_spoofs": {
            "spoof_trials": len(held_out["both"][SPOOF]),
            **{name: three_eers(scores) for name, scores in held_out.items()}},
        "operating_point": {
            "speaker_threshold": embedder.threshold, "spoof_threshold": scorer.threshold,
            "target_rejected_percent": round(100 * (1 - np.mean(at_point[TARGET])), 2),
            "nontarget_accepted_percent": round(100 * np.mean(at_point[NONTARGET]), 2),
            "spoof_accepted_percent": round(100 * np.mean(at_point[SPOOF]), 2),
            "spoof_accepted_by_system": {s: f"{spoof_accepted[s]}/{n}"
                                         for s, n in sorted(spoof_total.items())}},
        "cost": {**cost(embedder, detector),
                 "detector_macs_per_window": read_graph(detector.path).macs,
                 "embedder_macs_per_partial": embedder_macs(),
                 "embedder_cpu_ms_per_clip": round(1000 * embed_seconds / len(clips), 3),
                 "partials_per_clip": round(partials / len(clips), 2),
                 "max_partials": embedder.frontend.speaker.max_partials,
                 "rss_detector_and_gate_mb": round((rss_detector - rss_start) / 1e6, 2),
                 "rss_added_by_embedder_mb": round((rss_embedder - rss_detector) / 1e6, 2),
                 "embedder_model_bytes": embedder.path.stat().st_size},
        "speaker_model_sha256": embedder.card.sha256,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from edge_runtime.atomic import write_text_atomically

    write_text_atomically(args.out, json.dumps(report, indent=2) + "\n")
    if args.scores is not None:
        write_text_atomically(args.scores, "\n".join(rows) + "\n")
    print(json.dumps({"eer_percent": report["eer_percent"],
                      "eer_percent_unseen_spoofs": report["eer_percent_unseen_spoofs"],
                      "operating_point": {k: v for k, v in report["operating_point"].items()
                                          if k != "spoof_accepted_by_system"},
                      "cost": report["cost"]}, indent=1))


if __name__ == "__main__":
    main()
