"""Evaluation of the int8 model as the board runs it: EER pooled and per attack."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.clip import ClipScorer
from edge_runtime.frontend import Frontend
from edge_runtime.metrics import equal_error_rate, min_dcf
from edge_runtime.model import SpoofModel
from host_training.augment import add_white_noise, band_limit, reverberate
from host_training.datasets import Utterance, load_split
from host_training.features import keras_clip_scores
from host_training.sampling import source_of
from host_training.waveforms import load_waveforms


def split_metrics(utterances: list[Utterance], scores: np.ndarray,
                  threshold: float) -> dict[str, Any]:
    """Pooled EER, minDCF, accuracy at ``threshold`` and per-attack EER (each attack against all
    bona fide clips of the split, as ASVspoof reports it)."""
    labels = np.array([u.is_spoof for u in utterances], dtype=bool)
    bona, spoof = scores[~labels], scores[labels]
    rates = equal_error_rate(bona, spoof)
    per_attack: dict[str, dict[str, float]] = {}
    by_system: dict[str, list[float]] = defaultdict(list)
    for utterance, score in zip(utterances, scores, strict=True):
        if utterance.is_spoof:
            by_system[utterance.system].append(float(score))
    for system, values in sorted(by_system.items()):
        attack = np.asarray(values)
        per_attack[system] = {"files": len(values), "eer": equal_error_rate(bona, attack).eer,
                              "missed_at_threshold": float(np.mean(attack < threshold))}
    predicted = scores >= threshold
    return {
        "files": len(utterances), "bonafide": int((~labels).sum()), "spoof": int(labels.sum()),
        "eer": rates.eer, "eer_threshold": rates.threshold, "min_dcf": min_dcf(bona, spoof),
        "accuracy": float(np.mean(predicted == labels)),
        "bonafide_rejected": float(np.mean(predicted[~labels])),
        "spoof_accepted": float(np.mean(~predicted[labels])),
        "per_attack": per_attack,
        "per_source": per_source(utterances, scores, threshold),
    }


MIN_SOURCE_CLIPS = 10
SMALL_SOURCES = f"(sources of under {MIN_SOURCE_CLIPS} clips)"


def per_source(utterances: list[Utterance], scores: np.ndarray,
               threshold: float) -> dict[str, dict[str, Any]]:
    """Per speaker source (``sampling.source_of``: a corpus, or a demo page): its bona fide
    clips rejected at ``threshold`` and its spoofs passing, and the EER of its spoofs against
    its own bona fide clips. A pooled EER mixes two failures that call for different fixes:
    real speech of one channel scored as spoof (rejected high, within-source EER low) and
    spoofs the model cannot tell from the real speech beside them (within-source EER high)."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, utterance in enumerate(utterances):
        members[source_of(utterance)].append(index)
    # demo pages name speakers one or two clips at a time: those share one row
    small = [source for source, indices in members.items() if len(indices) < MIN_SOURCE_CLIPS]
    if len(small) > 1:
        members[SMALL_SOURCES] = sorted(i for source in small for i in members.pop(source))
    labels = np.array([u.is_spoof for u in utterances], dtype=bool)
    table: dict[str, dict[str, Any]] = {}
    for source, indices in sorted(members.items(),
                                  key=lambda item: (item[0] == SMALL_SOURCES, item[0])):
        bona = scores[indices][~labels[indices]]
        spoof = scores[indices][labels[indices]]
        table[source] = {
            "bonafide": int(bona.size), "spoof": int(spoof.size),
            "bonafide_rejected": float(np.mean(bona >= threshold)) if bona.size else None,
            "spoof_accepted": float(np.mean(spoof < threshold)) if spoof.size else None,
            "eer_within": (equal_error_rate(bona, spoof).eer
                           if bona.size and spoof.size else None),
        }
    return table


def score_split(model: SpoofModel, waves: list[np.ndarray]) -> np.ndarray:
    """Clip scores exactly as `edge-detect classify` computes them (waves are loaded the way
    the board reads files, so they go straight to the scorer's block path)."""
    scorer = ClipScorer(model)
    return np.array([scorer.score_blocks([w], f"clip {i}").score for i, w in enumerate(waves)])


def _float_vs_int8(utterances: list[Utterance], float_scores: np.ndarray,
                   int8_scores: np.ndarray, threshold: float) -> dict[str, Any]:
    metrics = split_metrics(utterances, float_scores, threshold)
    return {
        "eer": metrics["eer"],
        "per_attack_eer": {k: v["eer"] for k, v in metrics["per_attack"].items()},
        "max_abs_score_difference": float(np.max(np.abs(float_scores - int8_scores))),
        "mean_abs_score_difference": float(np.mean(np.abs(float_scores - int8_scores))),
        "label_agreement": float(np.mean((float_scores >= threshold)
                                         == (int8_scores >= threshold))),
    }


CONDITIONS = ("gain-10db", "gain+6db", "noise-20db", "noise-10db", "telephone", "room")
# The "room" condition: a mid-sized, reverberant room, the speaker a few metres away.
ROOM_RT60_SECONDS = 0.5
ROOM_DRR_DB = 3.0


def degrade(waves: list[np.ndarray], condition: str, rate: int, seed: int = 0) -> list[np.ndarray]:
    """The split's audio under one named condition (gain, white noise at an SNR, telephone,
    a reverberant room)."""
    rng = np.random.default_rng(seed)
    if condition.startswith("gain"):
        factor = 10 ** (float(condition[4:-2]) / 20)
        return [np.clip(w * factor, -1.0, 1.0).astype(np.float32) for w in waves]
    if condition.startswith("noise-"):
        snr = float(condition[6:-2])
        return [add_white_noise(w, rng, (snr, snr)) for w in waves]
    if condition == "telephone":
        # 8 kHz round trip: nothing above 4 kHz survives, as on a narrow-band phone line.
        return [band_limit(w, rng, (8000,), rate) for w in waves]
    if condition == "room":
        span = ((ROOM_RT60_SECONDS,) * 2, (ROOM_DRR_DB,) * 2)
        return [reverberate(w, rng, *span, rate) for w in waves]
    raise ValueError(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")


def evaluate_model(model_path: Path | None, data_root: Path, splits: list[str],
                   cache_dir: Path | None = None,
                   conditions: tuple[str, ...] = (),
                   det_path: Path | None = None,
                   keras_path: Path | None = None) -> dict[str, Any]:
    """Metrics per split for the int8 model, with shortcut checks and, optionally, the EER
    under each degradation condition (and how far the scores moved)."""
    from host_training.shortcuts import shortcut_report

    model = SpoofModel(model_path)
    keras_model = None
    if keras_path is not None:
        from host_training.model import load_detector

        keras_model = load_detector(keras_path)
    rate = model.frontend_config.sample_rate
    results: dict[str, Any] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in splits:
        utterances = load_split(data_root, split)
        waves = load_waveforms(utterances, rate, cache_dir)
        labels = np.array([u.is_spoof for u in utterances], dtype=bool)
        scores = score_split(model, waves)
        results[split] = split_metrics(utterances, scores, model.threshold)
        curves[split] = (scores[~labels], scores[labels])
        if keras_model is not None:
            float_scores = keras_clip_scores(keras_model, waves, Frontend(model.frontend_config))
            results[split]["float"] = _float_vs_int8(utterances, float_scores, scores,
                                                     model.threshold)
            curves[f"{split} (float)"] = (float_scores[~labels], float_scores[labels])
        results[split]["shortcuts"] = shortcut_report(waves, labels, scores, rate)
        robustness = {}
        for condition in conditions:
            degraded = score_split(model, degrade(waves, condition, rate))
            robustness[condition] = {
                "eer": equal_error_rate(degraded[~labels], degraded[labels]).eer,
                "mean_abs_score_change": float(np.mean(np.abs(degraded - scores))),
                "bonafide_rejected": float(np.mean(degraded[~labels] >= model.threshold)),
            }
        if robustness:
            results[split]["robustness"] = robustness
    if det_path is not None:
        from host_training.det import plot_det

        plot_det(curves, det_path, f"DET, int8 {model.path.name}")
    return results


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| split | files | EER % | minDCF | accuracy % | bona fide rejected % | "
             "spoof accepted % | loudness-only EER % | duration-only EER % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split, r in results.items():
        cut = r.get("shortcuts", {})
        alone = [f"{cut[k]['eer_alone'] * 100:.1f}" if k in cut else "-"
                 for k in ("loudness_dbfs", "duration_s")]
        lines.append(f"| {split} | {r['files']} | {r['eer'] * 100:.2f} | {r['min_dcf']:.3f} | "
                     f"{r['accuracy'] * 100:.1f} | {r['bonafide_rejected'] * 100:.1f} | "
                     f"{r['spoof_accepted'] * 100:.1f} | {alone[0]} | {alone[1]} |")
    floats = {split: r["float"] for split, r in results.items() if "float" in r}
    if floats:
        lines += ["", "float Keras model against the int8 model (clip scores, same windows)", "",
                  "| split | EER float % | EER int8 % | difference (pts) | max / mean abs score "
                  "difference | label agreement % |", "|---|---|---|---|---|---|"]
        for split, f in floats.items():
            int8_eer = results[split]["eer"]
            lines.append(f"| {split} | {f['eer'] * 100:.2f} | {int8_eer * 100:.2f} | "
                         f"{(int8_eer - f['eer']) * 100:+.2f} | "
                         f"{f['max_abs_score_difference']:.3f} / "
                         f"{f['mean_abs_score_difference']:.3f} | "
                         f"{f['label_agreement'] * 100:.1f} |")
    for split, r in results.items():
        if "shortcuts" in r:
            lines += ["", f"**{split}** shortcut check: EER of the cue alone, and Spearman "
                      "correlation of the model score with the cue within each class", "",
                      "| cue | EER alone % | corr. bona fide | corr. spoof |", "|---|---|---|---|"]
            for cue, c in r["shortcuts"].items():
                lines.append(f"| {cue} | {c['eer_alone'] * 100:.1f} | "
                             f"{c['score_correlation_bonafide']:+.2f} | "
                             f"{c['score_correlation_spoof']:+.2f} |")
        if "robustness" in r:
            lines += ["", f"**{split}** under degradation", "",
                      "| condition | EER % | mean abs score change | bona fide rejected % |",
                      "|---|---|---|---|", f"| clean | {r['eer'] * 100:.2f} | 0 | "
                      f"{r['bonafide_rejected'] * 100:.1f} |"]
            for name, c in r["robustness"].items():
                lines.append(f"| {name} | {c['eer'] * 100:.2f} | "
                             f"{c['mean_abs_score_change']:.3f} | "
                             f"{c['bonafide_rejected'] * 100:.1f} |")
    for split, r in results.items():
        lines += ["", f"**{split}** per attack (EER against all bona fide of the split)", "",
                  "| attack | files | EER % | missed at threshold % |", "|---|---|---|---|"]
        for system, a in r["per_attack"].items():
            lines.append(f"| {system} | {a['files']} | {a['eer'] * 100:.2f} | "
                         f"{a['missed_at_threshold'] * 100:.1f} |")
        if "per_source" in r:  # cards measured before it existed lack it
            lines += _source_table(split, r["per_source"])
    return "\n".join(lines)


def _percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}"


def _source_table(split: str, sources: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["", f"**{split}** per source (speaker corpus or demo page; at the threshold; "
             "EER of its spoofs against its own bona fide clips)", "",
             "| source | bona fide | rejected % | spoofs | passing % | EER within % |",
             "|---|---|---|---|---|---|"]
    for source, s in sources.items():
        lines.append(f"| {source} | {s['bonafide']} | {_percent(s['bonafide_rejected'])} | "
                     f"{s['spoof']} | {_percent(s['spoof_accepted'])} | "
                     f"{_percent(s['eer_within'], 2)} |")
    return lines

