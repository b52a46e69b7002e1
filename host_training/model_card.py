"""The model card's one writer on the host: the JSON card beside the model (written by
`edge-train export`, updated by `evaluate --update-card` and `calibrate --write-card`), and the
human model card rendered from it, so every figure in it comes from those commands, not from
hand editing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_runtime.atomic import atomic_output, write_text_atomically
from edge_runtime.errors import ModelError
from edge_runtime.model import ModelCard, card_path_for
from host_training.evaluate import markdown_table


def read_card(model_path: Path) -> dict[str, Any]:
    """The JSON card of ``model_path`` as a dict (every field, known to the board or not)."""
    return json.loads(card_path_for(model_path).read_text(encoding="utf-8"))


def write_card(model_path: Path, card: ModelCard | dict[str, Any]) -> Path:
    """Writes the card beside ``model_path`` atomically, after the board's own parser has read
    it back: a card the board would refuse never replaces the one in place."""
    path = card_path_for(model_path)
    raw = card.to_dict() if isinstance(card, ModelCard) else card
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
        try:
            ModelCard.from_json(temporary)
        except ModelError as error:
            raise ModelError(str(error).replace(str(temporary), str(path))) from None
    return path


def update_card(model_path: Path, **fields: Any) -> dict[str, Any]:
    """Replaces the given top-level fields of the card; the rest stays as it was."""
    card = read_card(model_path)
    card.update(fields)
    write_card(model_path, card)
    return card


def record_metrics(model_path: Path, results: dict[str, Any]) -> None:
    """Stores evaluation results on the card (the sha256 of the .tflite is unchanged).

    Merged per split, and within a split per condition, so a later run with --condition adds
    to the clean figures and to the conditions measured before (and a re-run of the clean
    figures keeps the robustness ones) instead of replacing them."""
    metrics = read_card(model_path).get("metrics", {})
    for split, values in results.items():
        recorded = metrics.setdefault(split, {})
        for key, value in values.items():
            if key == "robustness":
                recorded.setdefault(key, {}).update(value)
            else:
                recorded[key] = value
    update_card(model_path, metrics=metrics)

LIMITATIONS = """\
- Trained on about two hours of speech (spoofmix train): English read speech, letters and
  digits in 13 languages. Other languages, children, far-field or very noisy rooms are untested.
- Unseen generators are the hard case: the per-attack table above is the honest picture; an
  attack family missing from training can pass as bona fide.
- The threshold is the dev-set EER point. A new microphone or room shifts bona fide scores:
  calibrate on the device (`edge-detect calibrate`) before trusting decisions.
- Scores are for 4 s windows averaged over a clip; clips under about 1 s are repeat-padded and
  less reliable.
- Not a liveness test: a replayed genuine recording is bona fide speech to this model.
"""


def _calibration_rows(calibration: dict | None) -> list[str]:
    """How the int8 ranges were set (cards exported before the tail cut have no such block)."""
    if not calibration:
        return []
    share = calibration.get("range_outlier_share", 0.0)
    ranges = (f"cut where {share * 100:g} % of each activation's values lie outside at each end"
              if share else "min / max of the calibration values")
    return [f"| int8 calibration | {calibration.get('windows', 0)} windows of "
            f"{calibration.get('clips', 0)} training clips; ranges {ranges} |"]


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


def _split_line(summary: dict[str, Any]) -> str:
    if not summary:
        return "?"
    systems = summary.get("systems", {})
    # Hundreds of systems make a wall of names; the JSON card keeps them all.
    named = (", ".join(sorted(systems)) if len(systems) <= 40
             else "the most frequent: " + ", ".join(sorted(systems, key=systems.get)[-10:]))
    return (f"{summary.get('files')} files ({summary.get('bonafide')} bona fide, "
            f"{summary.get('spoof')} spoof from {len(systems)} systems; {named})")


def _augment_line(augment: dict[str, Any]) -> str:
    active = [f"{k[:-5]} {v:g}" for k, v in augment.items() if k.endswith("_prob") and v > 0]
    return ", ".join(active) or "none"


def render(card: dict[str, Any]) -> str:
    training = card.get("training", {})
    config = training.get("config", {})
    quant = card.get("quantization", {})
    metrics = card.get("metrics", {})
    arch = card.get("architecture", {})
    fe = card["frontend"]
    lines = [
        f"# Model card: {card.get('name', card['model_file'])}",
        "",
        "Generated by `edge-train card` from `edge_runtime/models/edge_detect.json`; every "
        "figure comes from `edge-train export` and `edge-train evaluate --update-card`.",
        "",
        "## At a glance",
        "",
        "| | |", "|---|---|",
        f"| file | `{card['model_file']}` ({card.get('size_bytes', 0) / 1024:.1f} KiB) |",
        f"| sha256 | `{card['sha256']}` |",
        f"| architecture | {arch.get('family', '?')}: {arch.get('architecture', 'edge')}, "
        f"activation {arch.get('activation', '?')}, stem {arch.get('stem_channels', '?')} "
        f"channels doubling over {arch.get('blocks', '?')} blocks, dense "
        f"{arch.get('dense_units', '?')}, dropout {arch.get('dropout', '?')}, pooling "
        f"{arch.get('pooling', 'global')}"
        + (f", stem pooling {arch['stem_band_pool']} bands" if arch.get("stem_band_pool", 2) != 2
           else "") + " |",
        f"| parameters | {card.get('parameters', '?')} |",
        f"| input | int8 {card['input']['shape']}, scale {card['input']['scale']:.5f}, "
        f"zero point {card['input']['zero_point']} |",
        f"| front end | {fe['scale']} {fe['n_bands']} bands, n_fft {fe['n_fft']}, win "
        f"{fe['win_length']}, hop {fe['hop_length']}, {fe['fmin']}-{fe['fmax']} Hz, "
        f"{fe['window_seconds']} s windows, normalisation {fe['normalization']}, "
        f"frame DC removal {fe.get('remove_frame_dc', False)} |",
        f"| threshold | {card['threshold']:.4f} ({card.get('threshold_source', '')}) |",
        f"| TFLite ops | {', '.join(card.get('tflite', {}).get('ops', []))} |",
        f"| tensor types | {card.get('tflite', {}).get('tensor_dtypes', {})} |",
        "",
        "## Data",
        "",
        f"Corpus: spoofmix (`{config.get('data', {}).get('root') or '../shared/data/spoofmix'}`),"
        " ASVspoof 2019 LA protocol format; attacks in eval are unseen in train and dev.",
        "",
        f"- train: {_split_line(training.get('train', {}))}",
        f"- dev (model selection, threshold): {_split_line(training.get('dev', {}))}",
        f"- more training corpora: {config.get('data', {}).get('train_roots', [])}; "
        f"generated: {config.get('data', {}).get('extra_train_roots', [])}",
        f"- selection corpus (dev split): "
        f"{config.get('data', {}).get('dev_root') or 'the corpus itself'}",
        f"- best epoch: {training.get('best_epoch', '?')}",
        "",
        f"Augmentation (probability per clip and epoch): "
        f"{_augment_line(config.get('augment', {}))}; full parameters in the JSON card.",
        "",
        "## int8 against float",
        "",
        "| | |", "|---|---|",
        f"| dev EER float | {_percent(quant.get('dev_eer_float', float('nan')))} |",
        f"| dev EER int8 | {_percent(quant.get('dev_eer_int8', float('nan')))} |",
        f"| max / mean abs score difference | {quant.get('max_abs_score_difference', 0):.4f} / "
        f"{quant.get('mean_abs_score_difference', 0):.4f} over {quant.get('windows', 0)} "
        "windows |",
        f"| label agreement (dev) | {quant.get('label_agreement', 0) * 100:.1f} % |",
        *_calibration_rows(quant.get("calibration")),
        "",
    ]
    if card.get("decisions"):
        lines += ["## Decisions", "", card["decisions"], ""]
    if metrics:
        lines += ["## Results of the int8 model", "",
                  "Reproduce: `edge-train evaluate --split dev --split eval --keras "
                  "runs/default/best.keras --det edge_runtime/models/det.png --update-card`, then "
                  "`edge-train evaluate --split eval --condition gain-10db --condition gain+6db "
                  "--condition noise-20db --condition noise-10db --condition telephone "
                  "--update-card`.", "",
                  markdown_table(metrics), ""]
    lines += ["![DET curves of the int8 and float models](det.png)", "",
              "## Limitations", "", LIMITATIONS]
    return "\n".join(lines)


def write_model_card(model_path: Path, out_path: Path) -> None:
    write_text_atomically(out_path, render(read_card(model_path)))
