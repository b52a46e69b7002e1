"""`python -m host_training.speaker_calibration`: the speaker embedder's cohort and thresholds.

Run after ``host_training.speaker_build`` (which writes the card without them), and again
whenever the shipped detector changes. Three steps, all with the board's own code:

1. The cohort (``edge_runtime.speaker_score``): unit embeddings of bona fide clips from the
   corpora's *train* splits whose speakers are in no SASV trial (``host_training.sasv_trials``),
   saved as ``speaker_cohort.npy`` (float16) beside the model, its sha256 on the card.
2. The speaker threshold on the AS-norm scale at the card's false-accept rate on all the
   non-target trials (as the cosine threshold before it), and the rates at 0.5, 2 and 5 %.
3. The owner spoof threshold for the shipped detector (the card's ``sasv`` block): the spoof
   score threshold that, with the speaker score swept, gives the lowest SASV-EER on the trials
   of the *calibration* half of the speakers (a seeded split, ``split_speakers``).
   ``benchmarks/sasv.py`` reports the other half apart, so the figure it quotes for the
   lock's rule was not chosen on the trials it is measured on.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.atomic import atomic_output
from edge_runtime.audio import load_audio
from edge_runtime.clip import ClipScorer
from edge_runtime.errors import AudioError
from edge_runtime.metrics import equal_error_rate
from edge_runtime.model import SpoofModel, sha256_of
from edge_runtime.owners import enrolment_embedding
from edge_runtime.speaker import SpeakerEmbedder
from edge_runtime.speaker_score import SCALE_AS_NORM, SpeakerScorer
from edge_runtime.speech_presence import NOSPEECH, SpeechPresence
from host_training.model_card import update_card
from host_training.sasv_trials import (
    DEFAULT_SOURCES,
    FAR_TARGETS,
    NONTARGET,
    TARGET,
    TrialSet,
    build_trials,
    duration_seconds,
    read_sources,
    threshold_at_far,
)

COHORT_FILE = "speaker_cohort.npy"
COHORT_CLIPS = 700  # at most; the train splits hold 625 bona fide clips of non-trial voices
COHORT_TOP = 100
# Owner spoof thresholds tried (spoof probability; the detector's own is near 0.36).
SPOOF_THRESHOLD_GRID = tuple(round(v, 2) for v in np.arange(0.30, 0.96, 0.05))


def log(message: str) -> None:
    print(f"speaker-calibration: {message}", file=sys.stderr, flush=True)



def split_speakers(speakers: Iterable[str], seed: int = 0) -> tuple[set[str], set[str]]:
    """(calibration, reported): the trial speakers in two seeded halves."""
    ordered = sorted(speakers)
    random.Random(seed).shuffle(ordered)
    return set(ordered[::2]), set(ordered[1::2])


def cohort_clips(trials: TrialSet, count: int = COHORT_CLIPS, seed: int = 1) -> list[Path]:
    """Bona fide train-split clips (1 s or more) of speakers in no trial, seeded order."""
    pool = [u for u in read_sources(DEFAULT_SOURCES)
            if not u.is_spoof and u.speaker not in trials.enrolment
            and u.path.parent.parent.name == "train"]
    random.Random(seed).shuffle(pool)
    clips: list[Path] = []
    for utterance in pool:
        if len(clips) >= count:
            break
        if duration_seconds(utterance.path) >= 1.0:
            clips.append(utterance.path)
    return clips


@dataclass(frozen=True)
class JudgedClip:
    spoof_score: float  # 1.0 where the detector had nothing to score
    label: str  # the detector's label (spoof, bonafide, nospeech)
    embedding: np.ndarray | None  # None: no voice the embedder can describe


def judge_clips(clips: list[Path], scorer: ClipScorer, embedder: SpeakerEmbedder,
                progress: str = "clips") -> dict[Path, JudgedClip]:
    judged: dict[Path, JudgedClip] = {}
    for index, clip in enumerate(clips):
        audio = load_audio(clip)
        result = scorer.score_audio(audio, str(clip))
        try:
            embedding = embedder.embed(audio, str(clip))
        except AudioError:
            embedding = None
        judged[clip] = JudgedClip(1.0 if result.score is None else result.score, result.label,
                                  embedding)
        if index % 200 == 0:
            log(f"{index}/{len(clips)} {progress}")
    return judged


@dataclass(frozen=True)
class TrialScores:
    """Per trial: kind, claimed speaker, spoof score, detector label, speaker score."""

    kind: np.ndarray
    speaker: np.ndarray
    spoof_score: np.ndarray
    label: np.ndarray
    speaker_score: np.ndarray  # -inf where the embedder found no voice
    similarity: np.ndarray


def score_trials(trials: TrialSet, judged: dict[Path, JudgedClip],
                 scorer: SpeakerScorer) -> TrialScores:
    owners = {}
    for speaker, paths in trials.enrolment.items():
        vectors = [judged[p].embedding for p in paths if judged[p].embedding is not None]
        embedding = enrolment_embedding(vectors)
        owners[speaker] = (embedding, scorer.stats(embedding))
    rows = []
    for trial in trials.trials:
        clip = judged[trial.utterance.path]
        if clip.embedding is None:
            similarity = score = -np.inf
        else:
            embedding, stats = owners[trial.speaker]
            similarity = float(embedding @ clip.embedding)
            score = scorer.score(similarity, clip.embedding, stats)
        rows.append((trial.kind, trial.speaker, clip.spoof_score, clip.label, score, similarity))
    columns = list(zip(*rows, strict=True))
    return TrialScores(*(np.array(c) for c in columns))


def eer_percent(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """EER (%) with higher scores meaning "accept"; None without both kinds of trial."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    finite = np.concatenate([positive, negative])
    floor = float(np.min(finite[np.isfinite(finite)], initial=0.0)) - 1e3
    positive, negative = (np.where(np.isfinite(a), a, floor) for a in (positive, negative))
    return round(100 * equal_error_rate(-positive, -negative).eer, 2)


def lock_scores(scores: TrialScores, spoof_threshold: float) -> np.ndarray:
    """The lock's rule as one sweepable score: the speaker score where the clip is speech and
    its spoof score is below ``spoof_threshold``, else rejected whatever the speaker score."""
    passes = (scores.label != NOSPEECH) & (scores.spoof_score < spoof_threshold)
    return np.where(passes, scores.speaker_score, -np.inf)


def sasv_eer(values: np.ndarray, scores: TrialScores, mask: np.ndarray) -> float | None:
    return eer_percent(values[mask & (scores.kind == TARGET)],
                       values[mask & (scores.kind != TARGET)])


def choose_spoof_threshold(scores: TrialScores, mask: np.ndarray) -> tuple[float, float]:
    """(threshold, SASV-EER %) of the grid's best owner spoof threshold on ``mask``'s trials."""
    results = [(sasv_eer(lock_scores(scores, t), scores, mask), t) for t in SPOOF_THRESHOLD_GRID]
    best_eer, best = min((e, t) for e, t in results if e is not None)
    return best, best_eer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speaker-model", type=Path, default=None)
    parser.add_argument("--far", type=float, default=0.01)
    args = parser.parse_args(argv)

    embedder = SpeakerEmbedder(args.speaker_model, num_threads=1)
    detector = SpoofModel(num_threads=1)
    speech = SpeechPresence.load(detector.frontend_config, num_threads=1)
    clip_scorer = ClipScorer(detector, speech=speech)
    trials = build_trials(read_sources(DEFAULT_SOURCES))

    cohort_paths = cohort_clips(trials)
    log(f"cohort: {len(cohort_paths)} clips of voices in no trial")
    cohort = []
    for path in cohort_paths:
        try:
            cohort.append(embedder.embed(load_audio(path), str(path)))
        except AudioError:
            continue
    cohort_path = embedder.path.parent / COHORT_FILE
    with atomic_output(cohort_path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, np.stack(cohort).astype(np.float16), allow_pickle=False)
    scorer = SpeakerScorer(np.load(cohort_path).astype(np.float32), COHORT_TOP)

    clips = sorted({p for ps in trials.enrolment.values() for p in ps}
                   | {t.utterance.path for t in trials.trials})
    judged = judge_clips(clips, clip_scorer, embedder, "trial clips")
    scores = score_trials(trials, judged, scorer)
    target = scores.speaker_score[scores.kind == TARGET]
    nontarget = scores.speaker_score[scores.kind == NONTARGET]
    thresholds = {str(far): threshold_at_far(nontarget, far) for far in FAR_TARGETS}
    calibration, _reported = split_speakers(trials.enrolment)
    in_calibration = np.isin(scores.speaker, sorted(calibration))
    spoof_threshold, calibration_eer = choose_spoof_threshold(scores, in_calibration)
    reported_eer = sasv_eer(lock_scores(scores, spoof_threshold), scores, ~in_calibration)
    everyone = np.ones_like(in_calibration)
    update_card(embedder.path, score_normalisation={
        "method": SCALE_AS_NORM, "cohort_file": COHORT_FILE,
        "cohort_sha256": sha256_of(cohort_path), "top": COHORT_TOP,
        "cohort_clips": len(cohort),
        "cohort_source": "bona fide clips of the corpora's train splits by speakers in no SASV "
                         "trial (host_training.speaker_calibration)",
        "threshold": threshold_at_far(nontarget, args.far), "threshold_far": args.far,
        "thresholds_at_far": thresholds,
        "frr_at_far": {far: round(float(np.mean(target < v)), 5)
                       for far, v in thresholds.items()},
        "sv_eer": round(eer_percent(target, nontarget) / 100, 5),
    }, sasv={
        "detector_sha256": detector.card.sha256, "spoof_threshold": spoof_threshold,
        "detector_threshold": detector.threshold,
        "chosen_on": f"SASV trials of {len(calibration)} of {len(trials.enrolment)} speakers "
                     "(host_training.speaker_calibration.split_speakers)",
        "sasv_eer_calibration": calibration_eer, "sasv_eer_other_speakers": reported_eer,
        "sasv_eer_all": sasv_eer(lock_scores(scores, spoof_threshold), scores, everyone),
    })
    log(f"cohort {len(cohort)} -> {cohort_path}; SV-EER {eer_percent(target, nontarget)} %, "
        f"threshold {thresholds[str(args.far)]:.4f} at FAR {args.far}; owner spoof threshold "
        f"{spoof_threshold} (SASV-EER {calibration_eer} % on the calibration speakers, "
        f"{reported_eer} % on the others)")


if __name__ == "__main__":
    main()
