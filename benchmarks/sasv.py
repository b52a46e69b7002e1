"""Spoofing-aware speaker verification (SASV), ASVspoof 5 style, on the corpus trials.

    python benchmarks/sasv.py [--out benchmarks/results/sasv.json] [--max-partials N]

Trials come from ``host_training.sasv_trials`` (target, non-target, spoof aimed at the target).
Every clip is judged by the board's own code: the detector with its speech gate
(``edge_runtime.clip.ClipScorer``) and the speaker embedder with its cohort normalisation
(``edge_runtime.speaker``, ``edge_runtime.speaker_score``); owners are enrolled as
``edge-detect enrol`` does (``edge_runtime.owners.enrolment_embedding``).

Systems (a positive is a target trial):

- detector alone: score = 1 - spoof probability;
- embedder alone: the speaker score (AS-norm, as the board decides), and the raw cosine;
- both, as the lock decides (``OwnerVerifier.label``): no speech and spoof scores at or above
  the owner spoof threshold (the card's ``sasv`` block) are rejected, the speaker score is
  swept; the same rule at the detector's own threshold (the rule before the calibration);
- a reference that is not the lock's rule: a sum of z-scores of both.

SV-EER: target vs non-target; SPF-EER: target vs spoof; SASV-EER: target vs both. The owner
spoof threshold was chosen on the calibration half of the speakers
(``host_training.speaker_calibration``): ``eer_percent_reported_speakers`` gives every system on
the other half alone. The report also gives the error rates at the shipped operating point,
the embedder's cost per partial and per clip beside the detector's per window (CPU ms, MACs,
RSS), and in the live loop (``edge_runtime.stream.LiveDetector`` with the voice-lock profile)
the embedder work a decision waits for.
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
from edge_runtime.config import load_profile  # noqa: E402
from edge_runtime.errors import AudioError  # noqa: E402
from edge_runtime.machine import current_rss_bytes  # noqa: E402
from edge_runtime.macs import read_graph  # noqa: E402
from edge_runtime.model import SpoofModel  # noqa: E402
from edge_runtime.owners import Owner, enrolment_embedding  # noqa: E402
from edge_runtime.speaker import SpeakerEmbedder  # noqa: E402
from edge_runtime.speaker_frontend import SpeakerFrontend  # noqa: E402
from edge_runtime.speech_presence import BONAFIDE, SpeechPresence  # noqa: E402
from edge_runtime.stream import detector_from_profile  # noqa: E402
from edge_runtime.verify import OwnerVerifier  # noqa: E402
from host_training.sasv_trials import (  # noqa: E402
    DEFAULT_SOURCES,
    NONTARGET,
    SPOOF,
    TARGET,
    build_trials,
    read_sources,
)
from host_training.speaker_calibration import (  # noqa: E402
    TrialScores,
    eer_percent,
    judge_clips,
    lock_scores,
    score_trials,
    split_speakers,
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


def system_scores(scores: TrialScores, spoof_threshold: float,
                  detector_threshold: float) -> dict[str, np.ndarray]:
    """Every system's sweepable score per trial (higher = accept)."""
    bona = 1.0 - scores.spoof_score
    systems = {
        "detector": bona,
        "embedder": scores.speaker_score,
        "embedder_cosine": scores.similarity,
        "both": lock_scores(scores, spoof_threshold),
        "both_at_detector_threshold": lock_scores(scores, detector_threshold),
    }
    # A score-level reference, not the lock's rule: z-scores of the speaker score and of
    # bona-fideness (normalised on the negative trials, so mildly optimistic), summed.
    negative = scores.kind != TARGET
    speaker = np.where(np.isfinite(scores.speaker_score), scores.speaker_score,
                       np.min(scores.speaker_score[np.isfinite(scores.speaker_score)]))
    z = [(v - v[negative].mean()) / v[negative].std() for v in (speaker, bona)]
    systems["both_score_sum"] = z[0] + z[1]
    return systems


def three_eers(values: np.ndarray, scores: TrialScores,
               mask: np.ndarray) -> dict[str, float | None]:
    kind = scores.kind
    target = values[mask & (kind == TARGET)]
    return {"sv_eer": eer_percent(target, values[mask & (kind == NONTARGET)]),
            "spf_eer": eer_percent(target, values[mask & (kind == SPOOF)]),
            "sasv_eer": eer_percent(target, values[mask & (kind != TARGET)])}


class TimedVerifier:
    """An OwnerVerifier whose checks are timed (thread CPU seconds, in call order)."""

    def __init__(self, inner: OwnerVerifier) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def check(self, audio: np.ndarray, name: str = "audio"):
        start = time.thread_time()
        result = self.inner.check(audio, name)
        self.seconds.append(time.thread_time() - start)
        return result

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def live_cost(clips: list[Path], detector: SpoofModel, speech: SpeechPresence,
              verifier: OwnerVerifier, profile_path: Path) -> dict[str, float | int]:
    """Each clip as one utterance of the live loop (voice-lock profile), followed by silence:
    the embedder CPU a decision waits for (checks made at the decision) against all of it."""
    profile = load_profile(profile_path)
    timed = TimedVerifier(verifier)
    waited, total, decisions, checks = [], [], 0, 0
    rate = detector.frontend_config.sample_rate
    silence = np.zeros(int(2.0 * rate), dtype=np.float32)
    for clip in clips:
        live = detector_from_profile(profile, detector, detector.frontend_config,
                                     detector.threshold, speech=speech, owner=timed)  # type: ignore[arg-type]
        audio = np.concatenate([load_audio(clip, rate), silence])
        before = len(timed.seconds)
        late_before = 0
        wait = 0.0
        for begin in range(0, audio.shape[0], 1600):  # 0.1 s chunks, as a microphone gives
            count = len(timed.seconds)
            events = live.push(audio[begin: begin + 1600])
            if live.owner_checks_at_decision > late_before:
                late_before = live.owner_checks_at_decision
                wait += sum(timed.seconds[count:])
            decisions += sum(e.decision is not None for e in events)
        events = live.flush()
        decisions += sum(e.decision is not None for e in events)
        waited.append(wait)
        total.append(sum(timed.seconds[before:]))
        checks += len(timed.seconds) - before
    return {"utterances": len(clips), "decisions": decisions, "owner_checks": checks,
            "embedder_cpu_ms_per_utterance": round(1000 * float(np.mean(total)), 3),
            "embedder_cpu_ms_a_decision_waits_for_mean": round(1000 * float(np.mean(waited)), 3),
            "embedder_cpu_ms_a_decision_waits_for_max": round(1000 * float(np.max(waited)), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SASV trials: SV-, SPF- and SASV-EER.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sasv.json")
    parser.add_argument("--speaker-model", type=Path, default=None)
    parser.add_argument("--max-partials", type=int, default=None,
                        help="override the card's partials per clip (cost vs accuracy)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--live-clips", type=int, default=60,
                        help="target clips run through the live loop for its cost (0: none)")
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
    spoof_threshold = embedder.owner_spoof_threshold(detector.card.sha256)
    if spoof_threshold is None:
        log("the speaker card holds no owner spoof threshold for this detector: the lock's rule "
            "uses the detector's own (run python -m host_training.speaker_calibration)")
        spoof_threshold = scorer.threshold

    trials = build_trials(read_sources(DEFAULT_SOURCES))
    log(f"{len(trials.enrolment)} speakers; "
        + ", ".join(f"{trials.count(k)} {k}" for k in (TARGET, NONTARGET, SPOOF)))
    clips = sorted({p for ps in trials.enrolment.values() for p in ps}
                   | {t.utterance.path for t in trials.trials})
    start = time.thread_time()
    judged = judge_clips(clips, scorer, embedder)
    judge_seconds = time.thread_time() - start
    partials = 0
    embed_seconds = 0.0
    for clip in clips:  # the embedder alone (front end and model), timed apart
        audio = load_audio(clip)
        partials += len(embedder.frontend.partials(audio))
        start = time.thread_time()
        try:
            embedder.embed(audio)
        except AudioError:  # timed only; judge_clips recorded the outcome
            pass
        embed_seconds += time.thread_time() - start
    scores = score_trials(trials, judged, embedder.scorer)
    systems = system_scores(scores, spoof_threshold, scorer.threshold)

    calibration, reported = split_speakers(trials.enrolment)
    everyone = np.ones(len(scores.kind), dtype=bool)
    on_reported = np.isin(scores.speaker, sorted(reported))
    # The detector trained on the corpora's train splits: spoof trials from dev / eval splits
    # are the ones it never saw.
    split = np.array([t.utterance.path.parent.parent.name for t in trials.trials])
    unseen = (scores.kind != SPOOF) | np.isin(split, ["dev", "eval"])
    refused = [p for ps in trials.enrolment.values() for p in ps if judged[p].label != BONAFIDE]

    def rates(accepted: np.ndarray) -> dict[str, float]:
        return {f"{kind}_{'rejected' if kind == TARGET else 'accepted'}_percent": round(
            100 * float(np.mean(accepted[scores.kind == kind] != (kind == TARGET))), 2)
            for kind in (TARGET, NONTARGET, SPOOF)}

    accepted = systems["both"] >= embedder.threshold
    spoof_accepted: Counter[str] = Counter()
    spoof_total: Counter[str] = Counter()
    for trial, ok in zip(trials.trials, accepted, strict=True):
        if trial.kind == SPOOF:
            spoof_total[trial.utterance.system] += 1
            spoof_accepted[trial.utterance.system] += int(ok)

    live = {}
    if args.live_clips:
        log(f"live loop: {args.live_clips} target clips")
        targets = [t for t in trials.trials if t.kind == TARGET][: args.live_clips]
        owner = trials.enrolment[targets[0].speaker]
        record = Owner(name="owner", embedding=enrolment_embedding(
                           [judged[p].embedding for p in owner
                            if judged[p].embedding is not None]),
                       threshold=embedder.threshold, model_sha256=embedder.card.sha256,
                       clips=len(owner), enrolled="-", score_scale=embedder.scorer.scale)
        verifier = OwnerVerifier(embedder, record, spoof_threshold)
        live = live_cost([t.utterance.path for t in targets], detector, speech, verifier,
                         REPO / "firmware_config/voice-lock.toml")

    report = {
        "trials": {"speakers": len(trials.enrolment),
                   **{k: trials.count(k) for k in (TARGET, NONTARGET, SPOOF)},
                   "enrolment_clips": sum(len(v) for v in trials.enrolment.values()),
                   "enrolment_clips_the_detector_refuses": len(refused),
                   "calibration_speakers": len(calibration),
                   "reported_speakers": len(reported)},
        "eer_percent": {name: three_eers(values, scores, everyone)
                        for name, values in systems.items()},
        "eer_percent_reported_speakers": {
            name: three_eers(values, scores, on_reported) for name, values in systems.items()},
        "eer_percent_unseen_spoofs": {
            "spoof_trials": int(np.sum(unseen & (scores.kind == SPOOF))),
            **{name: three_eers(systems[name], scores, unseen)
               for name in ("detector", "embedder", "both")}},
        "operating_point": {
            "speaker_threshold": embedder.threshold, "speaker_score": embedder.scorer.scale,
            "owner_spoof_threshold": spoof_threshold,
            "detector_threshold": scorer.threshold,
            **rates(accepted),
            "at_detector_threshold": rates(
                systems["both_at_detector_threshold"] >= embedder.threshold),
            "spoof_accepted_by_system": {s: f"{spoof_accepted[s]}/{n}"
                                         for s, n in sorted(spoof_total.items())}},
        "cost": {**cost(embedder, detector),
                 "detector_macs_per_window": read_graph(detector.path).macs,
                 "embedder_macs_per_partial": embedder_macs(),
                 "embedder_cpu_ms_per_clip": round(1000 * embed_seconds / len(clips), 3),
                 "detector_and_embedder_cpu_ms_per_clip": round(
                     1000 * judge_seconds / len(clips), 3),
                 "partials_per_clip": round(partials / len(clips), 2),
                 "max_partials": embedder.frontend.speaker.max_partials,
                 "rss_detector_and_gate_mb": round((rss_detector - rss_start) / 1e6, 2),
                 "rss_added_by_embedder_mb": round((rss_embedder - rss_detector) / 1e6, 2),
                 "embedder_model_bytes": embedder.path.stat().st_size,
                 "live_loop": live},
        "speaker_model_sha256": embedder.card.sha256,
        "detector_sha256": detector.card.sha256,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from edge_runtime.atomic import write_text_atomically

    write_text_atomically(args.out, json.dumps(report, indent=2) + "\n")
    if args.scores is not None:
        rows = ["speaker\tclip\tkind\tsystem\tsplit\tspoof_score\tlabel\tsimilarity\tspeaker_score"]
        for index, trial in enumerate(trials.trials):
            rows.append(f"{trial.speaker}\t{trial.utterance.path.name}\t{trial.kind}\t"
                        f"{trial.utterance.system}\t{split[index]}\t"
                        f"{scores.spoof_score[index]:.6f}\t{scores.label[index]}\t"
                        f"{scores.similarity[index]:.6f}\t{scores.speaker_score[index]:.6f}")
        write_text_atomically(args.scores, "\n".join(rows) + "\n")
    print(json.dumps({k: report[k] for k in ("eer_percent", "eer_percent_reported_speakers",
                                              "cost")}, indent=1))


if __name__ == "__main__":
    main()
