"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from edge_runtime.defaults import THREADS_RANGE

model_option = click.option(
    "--model", "model_path", type=click.Path(path_type=Path), default=None,
    help="A .tflite model with its .json card beside it (default: the shipped model).",
)
threads_option = click.option(
    "--threads", type=click.IntRange(*THREADS_RANGE), default=None,
    help="Interpreter threads (default: the runtime's choice).",
)
speech_model_option = click.option(
    "--speech-model", "speech_model_path", type=click.Path(path_type=Path), default=None,
    help="The speech gate (.tflite with its card; default: the shipped models/speech_gate).",
)
speech_threshold_option = click.option(
    "--speech-threshold", type=click.FloatRange(0.0, 1.0), default=None,
    help="Speech probability below which input is 'no speech' (default: the gate card's).",
)
