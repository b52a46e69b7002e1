"""Options and the error exit shared by the `edge-train` commands (and its vocoder group)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from edge_runtime.errors import EXIT_INPUT_ERROR

DEFAULT_CACHE = Path("cache")
data_option = click.option(
    "--data", "data_root", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Corpus root (protocols/ + <split>/flac, or bonafide/ + spoof/ folders). "
         "Default: $EDGE_DETECT_DATA, else ../shared/data/spoofmix.",
)
cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_CACHE, show_default=True, help="Folder for decoded-audio caches.",
)


def fail(message: str) -> NoReturn:
    """One line on stderr and exit 2: the way every `edge-train` command refuses its input."""
    click.echo(f"edge-train: error: {message}", err=True)
    sys.exit(EXIT_INPUT_ERROR)
