"""`edge-detect info`: a short summary of the model, its card and the interpreter in use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edge_runtime.cli.options import model_option


def _percent(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, int | float) else "?"


def summary_lines(shown: str, interpreter: str, size_bytes: int, card: dict[str, Any]) -> list[str]:
    """The card's headline facts, one line each; everything else is in `info --json`."""
    fe = card["frontend"]
    lines = [
        f"model:       {shown}",
        f"name:        {card.get('name', card['model_file'])}",
        f"interpreter: {interpreter}",
        f"size:        {size_bytes / 1024:.1f} KiB, {card.get('parameters', '?')} parameters, "
        f"sha256 {card['sha256'][:12]}...",
        f"front end:   {fe['scale']} {fe['n_bands']} bands, n_fft {fe['n_fft']}, "
        f"hop {fe['hop_length']}, window {fe['window_seconds']} s at {fe['sample_rate']} Hz",
        f"threshold:   {card['threshold']:.4f}"
        + (f" ({card['threshold_source']})" if card.get("threshold_source") else ""),
    ]
    quant = card.get("quantization", {})
    if quant:
        lines.append(f"int8:        dev EER {_percent(quant.get('dev_eer_int8'))} "
                     f"(float {_percent(quant.get('dev_eer_float'))})")
    for split, result in card.get("metrics", {}).items():
        if isinstance(result, dict) and "eer" in result:
            lines.append(f"{split + ':':<12} EER {_percent(result['eer'])}, "
                         f"minDCF {result.get('min_dcf', float('nan')):.3f} on "
                         f"{result.get('files', '?')} clips")
    lines.append("whole card:  edge-detect info --json")
    return lines


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole card as JSON.")
def info(model_path: Path | None, as_json: bool) -> None:
    """Show the model, a summary of its card and the TFLite interpreter that runs it."""
    from edge_runtime.audio import display_path
    from edge_runtime.model import SpoofModel

    model = SpoofModel(model_path)
    shown = display_path(model.path)
    card = model.card.to_dict()
    if as_json:
        click.echo(json.dumps({"model": shown, "interpreter": model.interpreter_name,
                               "card": card}, indent=2))
        return
    lines = summary_lines(shown, model.interpreter_name, model.path.stat().st_size, card)
    lines.insert(-1, f"speech gate: {_speech_gate_line(model.frontend_config)}")
    for line in lines:
        click.echo(line)


def _speech_gate_line(detector_frontend) -> str:
    """The shipped speech gate as classify and run will load it, or why they cannot."""
    from edge_runtime.audio import display_path
    from edge_runtime.errors import ModelError
    from edge_runtime.speech_presence import SpeechPresence

    try:
        gate = SpeechPresence.load(detector_frontend)
    except ModelError as error:
        return f"cannot be used ({error})"
    fe = gate.config
    return (f"{display_path(gate.model.path)}, threshold {gate.threshold:.4f}, "
            f"{fe.scale} {fe.n_bands} bands on the detector's STFT")
