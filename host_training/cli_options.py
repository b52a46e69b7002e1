"""Options and the error exit shared by the `edge-train` commands (and its vocoder group)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from edge_runtime.errors import EXIT_INPUT_ERROR

if TYPE_CHECKING:
    from host_training.synth import SynthSummary

DEFAULT_CACHE = Path("cache")
# The start of the one line every `edge-train` refusal or stopped run ends with.
ERROR_PREFIX = "edge-train: error:"
data_option = click.option(
    "--data", "data_root", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Corpus root (protocols/ + <split>/flac, or bonafide/ + spoof/ folders). "
         "Default: $EDGE_DETECT_DATA, else ../shared/data/spoofmix.",
)
cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_CACHE, show_default=True, help="Folder for decoded-audio caches.",
)


def fail(message: str, exit_code: int = EXIT_INPUT_ERROR) -> NoReturn:
    """One line on stderr and exit 2 (or ``exit_code``): the way every `edge-train` command
    refuses its input or reports a run it had to stop."""
    click.echo(f"{ERROR_PREFIX} {message}", err=True)
    sys.exit(exit_code)


def report_written(summary: SynthSummary, what: str) -> None:
    """Each clip that could not be made on stderr, the counts on stdout; exit 2 if any failed
    (everything written stays written, and a rerun resumes)."""
    for message in summary.errors:
        click.echo(f"edge-train: {message}", err=True)
    click.echo(f"{summary.written} {what} written, {summary.skipped} already there; "
               f"protocol {summary.protocol}")
    if summary.errors:
        sys.exit(EXIT_INPUT_ERROR)
