"""`edge-detect classify FILE...`: one line per file, exit 0 all bona fide / 1 any spoof."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.cli.options import model_option, threads_option
from edge_runtime.errors import EXIT_BONAFIDE, EXIT_INPUT_ERROR, EXIT_SPOOF, AudioError


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@threads_option
@click.option("--json", "as_json", is_flag=True, help="JSON lines: path, score, label.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Spoof threshold on the probability (default: the model card's).")
def classify(files: tuple[Path, ...], model_path: Path | None, threads: int | None,
             as_json: bool, threshold: float | None) -> None:
    """Score audio FILES; the score is the probability that the speech is spoofed.

    Exit 0 if every file is bona fide, 1 if any is spoofed, 2 if any file could not be scored
    (the others are still scored and printed), 3 if the model cannot run.
    """
    from edge_runtime.audio import display_path
    from edge_runtime.clip import ClipScorer
    from edge_runtime.model import SpoofModel

    scorer = ClipScorer(SpoofModel(model_path, num_threads=threads), threshold=threshold)
    any_spoof = False
    any_error = False
    for path in files:
        # Names that are not valid UTF-8 arrive surrogate-escaped; print them with U+FFFD so
        # stdout stays valid UTF-8 (the file itself is still opened by its exact bytes).
        shown = display_path(path)
        try:
            result = scorer.score_file(path)
        except AudioError as error:
            any_error = True
            click.echo(f"edge-detect: error: {error}", err=True)
            continue
        any_spoof |= result.label == "spoof"
        if as_json:
            click.echo(json.dumps({"path": shown, "score": round(result.score, 6),
                                   "label": result.label}, ensure_ascii=False))
        else:
            click.echo(f"{shown}\t{result.score:.4f}\t{result.label}")
    sys.exit(EXIT_INPUT_ERROR if any_error else EXIT_SPOOF if any_spoof else EXIT_BONAFIDE)
