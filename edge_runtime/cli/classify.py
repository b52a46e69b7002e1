"""`edge-detect classify FILE...`: one line per file: bona fide, spoof or no speech."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.cli.options import (
    model_option,
    speech_model_option,
    speech_threshold_option,
    threads_option,
)
from edge_runtime.errors import (
    EXIT_BONAFIDE,
    EXIT_INPUT_ERROR,
    EXIT_NO_SPEECH,
    EXIT_SPOOF,
    AudioError,
)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@speech_model_option
@threads_option
@click.option("--json", "as_json", is_flag=True, help="JSON lines: path, score, speech, label.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Spoof threshold on the probability (default: the model card's).")
@speech_threshold_option
def classify(files: tuple[Path, ...], model_path: Path | None, speech_model_path: Path | None,
             threads: int | None, as_json: bool, threshold: float | None,
             speech_threshold: float | None) -> None:
    """Score audio FILES: bonafide, spoof, or nospeech (silence, tones, music, noise).

    The score is the probability that the speech is spoofed ("-" for digital silence);
    --json adds "speech", the probability that the file holds speech at all. Exit 0 only if
    every file is bona fide speech; 1 if any is spoofed; else 4 if any holds no speech; 2 if
    any file could not be scored (the others are still scored and printed); 3 if a model
    cannot run.
    """
    from edge_runtime.audio import display_path
    from edge_runtime.clip import ClipScorer
    from edge_runtime.model import SpoofModel
    from edge_runtime.speech_presence import NOSPEECH, SPOOF, SpeechPresence

    model = SpoofModel(model_path, num_threads=threads)
    speech = SpeechPresence.load(model.frontend_config, speech_model_path, speech_threshold,
                                 num_threads=threads)
    scorer = ClipScorer(model, threshold=threshold, speech=speech)
    labels: set[str] = set()
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
        labels.add(result.label)
        score = None if result.score is None else round(result.score, 6)
        speech_score = None if result.speech is None else round(result.speech, 6)
        if as_json:
            click.echo(json.dumps({"path": shown, "score": score, "speech": speech_score,
                                   "label": result.label}, ensure_ascii=False))
        else:
            shown_score = "-" if result.score is None else f"{result.score:.4f}"
            click.echo(f"{shown}\t{shown_score}\t{result.label}")
    if any_error:
        code = EXIT_INPUT_ERROR
    elif SPOOF in labels:
        code = EXIT_SPOOF
    elif NOSPEECH in labels:
        code = EXIT_NO_SPEECH
    else:
        code = EXIT_BONAFIDE
    sys.exit(code)
