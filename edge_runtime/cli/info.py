"""`edge-detect info`: the model card and the interpreter in use."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_runtime.cli.options import model_option


@click.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info(model_path: Path | None, as_json: bool) -> None:
    """Show the model, its card and the TFLite interpreter that runs it."""
    from edge_runtime.audio import display_path
    from edge_runtime.model import SpoofModel

    model = SpoofModel(model_path)
    shown = display_path(model.path)
    card = model.card.to_dict()
    if as_json:
        click.echo(json.dumps({"model": shown, "interpreter": model.interpreter_name,
                               "card": card}, indent=2))
        return
    click.echo(f"model:       {shown}")
    click.echo(f"interpreter: {model.interpreter_name}")
    click.echo(f"size:        {model.path.stat().st_size / 1024:.1f} KiB")
    click.echo(f"threshold:   {model.threshold:.4f}")
    fe = model.frontend_config
    click.echo(f"front end:   {fe.scale} {fe.n_bands} bands, n_fft {fe.n_fft}, "
               f"hop {fe.hop_length}, window {fe.window_seconds} s at {fe.sample_rate} Hz")
    click.echo(f"speech gate: {_speech_gate_line(fe)}")
    click.echo("card:")
    click.echo(json.dumps(card, indent=2))


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
