"""How far a report split can be told by voice alone: the voice prior beside the detector.

    python benchmarks/voice_prior.py [--extra cache/spoofmix-extra] [--neighbours 20]
                                     [--out benchmarks/results/voice-prior.json]

Every training clip (spoofmix train and the extra corpus's train) is embedded by the kit's
speaker embedder (``edge_runtime.speaker``, which hears the channel as well as the voice). A
clip of a report split (spoofmix eval, extra dev) gets as its *voice prior* the spoof share of
its nearest training clips by cosine: a score that knows nothing about how speech was made,
only whose voice and which recording chain it resembles. Its EER, beside the shipped
detector's (``ClipScorer``, int8, no speech gate), says how much of a split a voice-and-channel
shortcut could solve; the Spearman correlation of detector score and prior within each class
says how much the detector follows it. Clips the embedder cannot describe (no signal) are left
out of both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from edge_runtime.atomic import write_text_atomically
from edge_runtime.audio import load_audio
from edge_runtime.clip import ClipScorer
from edge_runtime.errors import EdgeDetectError
from edge_runtime.metrics import equal_error_rate
from edge_runtime.model import SpoofModel
from edge_runtime.speaker import SpeakerEmbedder, unit
from host_training.datasets import default_data_root, load_split
from host_training.sampling import source_of

REPO = Path(__file__).resolve().parents[1]


def embeddings(embedder: SpeakerEmbedder, utterances) -> tuple[np.ndarray, list]:
    """Unit embeddings of the clips that have a voice, and those clips."""
    vectors, kept = [], []
    for index, utterance in enumerate(utterances):
        try:
            vectors.append(unit(embedder.embed(load_audio(utterance.path))))
            kept.append(utterance)
        except EdgeDetectError:
            pass
        if (index + 1) % 500 == 0:
            print(f"  embedded {index + 1}/{len(utterances)}", file=sys.stderr, flush=True)
    return np.array(vectors), kept


def split_report(name: str, utterances, embedder: SpeakerEmbedder, train: np.ndarray,
                 train_spoof: np.ndarray, neighbours: int, scorer: ClipScorer) -> dict:
    vectors, kept = embeddings(embedder, utterances)
    nearest = np.argsort(-(vectors @ train.T), axis=1)[:, :neighbours]
    prior = train_spoof[nearest].mean(axis=1)
    score = np.array([scorer.score_file(u.path).score for u in kept])
    spoof = np.array([u.is_spoof for u in kept])
    report = {
        "clips": len(kept), "left_out": len(utterances) - len(kept),
        "voice_prior_eer_percent": 100 * equal_error_rate(prior[~spoof], prior[spoof]).eer,
        "detector_eer_percent": 100 * equal_error_rate(score[~spoof], score[spoof]).eer,
        "spearman_score_prior": {
            label: float(spearmanr(prior[mask], score[mask]).statistic)
            for label, mask in (("bonafide", ~spoof), ("spoof", spoof))},
        "per_source": {},
    }
    sources = np.array([source_of(u) for u in kept])
    for source in sorted(set(sources)):
        for label, is_spoof in (("bonafide", False), ("spoof", True)):
            mask = (sources == source) & (spoof == is_spoof)
            if mask.sum() >= 8:
                report["per_source"][f"{source} {label}"] = {
                    "clips": int(mask.sum()), "voice_prior": float(prior[mask].mean()),
                    "detector_score": float(score[mask].mean())}
    print(f"{name}: {report['clips']} clips; voice prior alone EER "
          f"{report['voice_prior_eer_percent']:.1f} %, detector "
          f"{report['detector_eer_percent']:.1f} %; Spearman(score, prior) bona fide "
          f"{report['spearman_score_prior']['bonafide']:+.2f}, spoof "
          f"{report['spearman_score_prior']['spoof']:+.2f}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="spoofmix root (default: $EDGE_DETECT_DATA, else ../shared/data)")
    parser.add_argument("--extra", type=Path, default=REPO / "cache" / "spoofmix-extra")
    parser.add_argument("--neighbours", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results"
                        / "voice-prior.json")
    args = parser.parse_args()
    spoofmix = args.data or default_data_root()
    for root in (spoofmix, args.extra):
        if not (root / "protocols").is_dir():
            sys.exit(f"voice_prior: {root}: no protocols/ folder (build the corpus first)")
    embedder = SpeakerEmbedder()
    train_utterances = [*load_split(spoofmix, "train"), *load_split(args.extra, "train")]
    print(f"embedding {len(train_utterances)} training clips", file=sys.stderr)
    train, kept = embeddings(embedder, train_utterances)
    train_spoof = np.array([u.is_spoof for u in kept], dtype=float)
    scorer = ClipScorer(SpoofModel())
    report = {"neighbours": args.neighbours, "training_clips": len(kept), "splits": {
        "spoofmix/eval": split_report("spoofmix/eval", load_split(spoofmix, "eval"),
                                      embedder, train, train_spoof, args.neighbours, scorer),
        "extra/dev": split_report("extra/dev", load_split(args.extra, "dev"), embedder,
                                  train, train_spoof, args.neighbours, scorer)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(args.out, json.dumps(report, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
