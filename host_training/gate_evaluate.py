"""What the speech gate does to decisions, measured as `edge-detect classify` decides them.

Every clip goes through ``ClipScorer`` with the detector and the gate, so the figures are the
board's. Reported: non-speech TEST clips accepted as bona fide (the lock's failure) and
labelled ``nospeech``, per kind; bona fide and spoofed speech called ``nospeech`` on each speech
split (with the shortest clips apart: letters and digits); the detector's EER on all clips of a
split and on the clips the gate lets through (it must not change).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.clip import ClipScore, ClipScorer
from edge_runtime.metrics import equal_error_rate
from edge_runtime.model import SpoofModel, card_path_for
from edge_runtime.speech_presence import BONAFIDE, NOSPEECH, SpeechPresence
from host_training.datasets import load_split
from host_training.nonspeech import read_manifest
from host_training.waveforms import load_clip, load_waveforms

SHORT_CLIP_SECONDS = 1.0  # spoken letters and digits in the corpora are this short


def _score(scorer: ClipScorer, wave: np.ndarray, name: str) -> ClipScore:
    return scorer.score_blocks([wave], name)


def evaluate_nonspeech(scorer: ClipScorer, root: Path, split: str = "test") -> dict[str, Any]:
    """Non-speech clips of ``split``: how many each outcome got, per kind and in all."""
    rate = scorer.frontend.config.sample_rate
    per_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_package: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    accepted: list[str] = []
    scored = []
    for clip in read_manifest(root, split):
        result = _score(scorer, load_clip(clip.path, rate), str(clip.path))
        per_kind[clip.kind][result.label] += 1
        per_kind[clip.kind]["clips"] += 1
        if clip.kind == "sfx":
            package = clip.source.split("/")[0] if not clip.source.startswith(
                ("sounds/", "games/")) else "/".join(clip.source.split("/")[:2])
            per_package[package][result.label] += 1
            per_package[package]["clips"] += 1
        scored.append((result.speech or 0.0, clip))
        if result.label == BONAFIDE:
            accepted.append(str(clip.path.relative_to(root)))
    total = sum(kind["clips"] for kind in per_kind.values())
    scored.sort(key=lambda item: -item[0])
    return {
        "clips": total,
        "accepted_as_bonafide": sum(kind[BONAFIDE] for kind in per_kind.values()),
        "labelled_nospeech": sum(kind[NOSPEECH] for kind in per_kind.values()),
        "max_speech_score": float(scored[0][0]) if scored else None,
        "per_kind": {kind: dict(counts) for kind, counts in sorted(per_kind.items())},
        "per_sound_source": {name: dict(c) for name, c in sorted(per_package.items())},
        "accepted_files": accepted,
        # The clips closest to being taken for speech: where the margin is thinnest.
        "highest_speech_score_files": [
            {"path": str(c.path.relative_to(root)), "source": c.source, "speech": score}
            for score, c in scored[:15]],
    }


def evaluate_speech(scorer: ClipScorer, root: Path, split: str, cache_dir: Path | None,
                    spoof_threshold: float) -> dict[str, Any]:
    """A speech split: clips called nospeech, and the detector's EER with and without the gate."""
    utterances = load_split(root, split)
    rate = scorer.frontend.config.sample_rate
    waves = load_waveforms(utterances, rate, cache_dir)
    results = [_score(scorer, w, str(u.path)) for u, w in zip(utterances, waves, strict=True)]
    labels = np.array([u.is_spoof for u in utterances], dtype=bool)
    scores = np.array([r.score if r.score is not None else np.nan for r in results])
    nospeech = np.array([r.label == NOSPEECH for r in results])
    short = np.array([w.shape[0] < SHORT_CLIP_SECONDS * rate for w in waves])
    out: dict[str, Any] = {
        "files": len(utterances), "bonafide": int((~labels).sum()), "spoof": int(labels.sum()),
        "bonafide_nospeech": int((nospeech & ~labels).sum()),
        "bonafide_nospeech_rate": float(np.mean(nospeech[~labels])) if (~labels).any() else None,
        "spoof_nospeech": int((nospeech & labels).sum()),
        "short_bonafide": int((short & ~labels).sum()),
        "short_bonafide_nospeech": int((short & nospeech & ~labels).sum()),
        "bonafide_nospeech_files": [str(u.path.name) for u, n in zip(utterances, nospeech,
                                                                     strict=True)
                                    if n and not u.is_spoof],
        "min_bonafide_speech_score": float(min(r.speech or 0.0 for r, s in zip(
            results, labels, strict=True) if not s)) if (~labels).any() else None,
    }
    if labels.any() and (~labels).any():
        everything = equal_error_rate(scores[~labels], scores[labels])
        kept = ~nospeech
        gated = equal_error_rate(scores[~labels & kept], scores[labels & kept])
        out["eer_all_clips"] = everything.eer
        out["eer_clips_with_speech"] = gated.eer
        # Decisions as the lock sees them: a spoof called nospeech is still refused.
        decided_bona = np.array([r.label == BONAFIDE for r in results])
        out["spoof_accepted_as_bonafide"] = float(np.mean(decided_bona[labels]))
        out["spoof_accepted_without_gate"] = float(np.mean(scores[labels] < spoof_threshold))
    return out


def evaluate_gate(model_path: Path | None, speech_model_path: Path | None, nonspeech_root: Path,
                  speech_splits: list[tuple[Path, str]], cache_dir: Path | None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    model = SpoofModel(model_path)
    speech = SpeechPresence.load(model.frontend_config, speech_model_path)
    scorer = ClipScorer(model, speech=speech)
    results: dict[str, Any] = {
        "detector": {"path": str(model.path), "sha256": model.card.sha256},
        "speech_gate": {"path": str(speech.model.path), "sha256": speech.model.card.sha256,
                        "threshold": speech.threshold},
    }
    log(f"non-speech test set ({nonspeech_root})")
    results["nonspeech_test"] = evaluate_nonspeech(scorer, nonspeech_root, "test")
    ns = results["nonspeech_test"]
    log(f"  {ns['accepted_as_bonafide']} of {ns['clips']} accepted as bona fide, "
        f"{ns['labelled_nospeech']} labelled nospeech")
    for root, split in speech_splits:
        name = f"{root.name}/{split}"
        log(f"speech: {name}")
        metrics = evaluate_speech(scorer, root, split, cache_dir, model.threshold)
        results[name] = metrics
        log(f"  bona fide called nospeech {metrics['bonafide_nospeech']} of "
            f"{metrics['bonafide']} (short clips: {metrics['short_bonafide_nospeech']} of "
            f"{metrics['short_bonafide']}); spoof called nospeech {metrics['spoof_nospeech']}"
            + (f"; EER all {metrics['eer_all_clips']:.2%} / with speech "
               f"{metrics['eer_clips_with_speech']:.2%}" if "eer_all_clips" in metrics else ""))
    return results


def record_on_gate_card(speech_model_path: Path, results: dict[str, Any]) -> None:
    """Writes the measured figures (not the file lists) into the gate card's metrics."""
    card_path = card_path_for(speech_model_path)
    card = json.loads(card_path.read_text())
    metrics = {}
    for key, value in results.items():
        if isinstance(value, dict) and key not in ("detector", "speech_gate"):
            metrics[key] = {k: v for k, v in value.items() if not k.endswith("_files")}
    card["metrics"] = {"detector_sha256": results["detector"]["sha256"], **metrics}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
