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
