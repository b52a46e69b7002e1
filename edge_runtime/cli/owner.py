"""`edge-detect enrol NAME FILE...` and `edge-detect verify --owner NAME FILE...`.

enrol: every clip must be bona fide speech (detector and speech gate), else nothing is written
and the exit code says why (1 spoof, 4 no speech, 2 unreadable), naming the clip. The owner's
record (embedding and threshold, never audio) is written atomically into the store.

verify: one line per file: spoof score, speaker score, decision. Exit 0 only if every file
is the owner's bona fide speech; 1 if any is spoof; else 5 if any is someone else's bona fide
speech; else 4 if any holds no speech; 2 if a file could not be read (the others are still
judged); 3 if a model cannot run.
"""

from __future__ import annotations

import json
import math
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
    EXIT_NOT_OWNER,
    EXIT_SPOOF,
    AudioError,
    OwnerError,
)

store_option = click.option(
    "--store", "store_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
    help="Folder of owner records (default: $EDGE_DETECT_OWNERS, else "
         "~/.local/share/edge-detect/owners).",
)
speaker_model_option = click.option(
    "--speaker-model", "speaker_model_path", type=click.Path(path_type=Path), default=None,
    help="The speaker embedder (.tflite with its card; default: the shipped one).",
)


def _scorer(model_path: Path | None, speech_model_path: Path | None,
            speech_threshold: float | None, threads: int | None):
    from edge_runtime.clip import ClipScorer
    from edge_runtime.model import SpoofModel
    from edge_runtime.speech_presence import SpeechPresence

    model = SpoofModel(model_path, num_threads=threads)
    speech = SpeechPresence.load(model.frontend_config, speech_model_path, speech_threshold,
                                 num_threads=threads)
    return ClipScorer(model, speech=speech)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@click.command()
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_option
@click.option("--threshold", type=float, default=None,
              help="This owner's speaker threshold (speaker score, normalised against the "
                   "embedder's cohort; default: the card's, set at its target false-accept "
                   "rate; lower opens for its owner more often and for strangers too).")
@click.option("--replace", is_flag=True, help="Replace an owner already enrolled under NAME.")
@model_option
@speaker_model_option
@speech_model_option
@speech_threshold_option
@threads_option
def enrol(name: str, files: tuple[Path, ...], store_dir: Path | None, threshold: float | None,
          replace: bool, model_path: Path | None, speaker_model_path: Path | None,
          speech_model_path: Path | None, speech_threshold: float | None,
          threads: int | None) -> None:
    """Enrol owner NAME from a few clips of their voice (3 or more, a few seconds each)."""
    from edge_runtime.audio import display_path, load_audio
    from edge_runtime.owners import Owner, OwnerStore, check_name, enrolment_embedding, now_iso
    from edge_runtime.speaker import SpeakerEmbedder
    from edge_runtime.speech_presence import BONAFIDE, SPOOF
    from edge_runtime.verify import OwnerVerifier

    check_name(name)
    if threshold is not None and not math.isfinite(threshold):
        raise click.BadParameter(f"{threshold} is not a number", param_hint="'--threshold'")
    store = OwnerStore(store_dir)
    if store.exists(name) and not replace:
        raise OwnerError(f"owner {name!r} is already enrolled in {store.folder}; "
                         "add --replace to enrol them again")
    scorer = _scorer(model_path, speech_model_path, speech_threshold, threads)
    embedder = SpeakerEmbedder(speaker_model_path, num_threads=threads)
    rate = embedder.card.frontend.sample_rate
    embeddings = []
    for path in files:
        shown = display_path(path)
        audio = load_audio(path, rate)  # AudioError: exit 2, nothing written
        result = scorer.score_audio(audio, shown)
        if result.label != BONAFIDE:
            why = ("is judged spoofed speech" if result.label == SPOOF
                   else "holds no speech the detector can judge")
            click.echo(f"edge-detect: error: enrolment refused: {shown} {why} (spoof score "
                       f"{_fmt(result.score)}, speech {_fmt(result.speech)}); nothing written",
                       err=True)
            sys.exit(EXIT_SPOOF if result.label == SPOOF else EXIT_NO_SPEECH)
        embeddings.append(embedder.embed(audio, shown))
        click.echo(f"{shown}\t{_fmt(result.score)}\tbonafide")
    owner_threshold = embedder.threshold if threshold is None else threshold

    def owner_from(vectors: list) -> Owner:
        return Owner(name=name, embedding=enrolment_embedding(vectors), threshold=owner_threshold,
                     model_sha256=embedder.card.sha256, clips=len(vectors), enrolled=now_iso(),
                     score_scale=embedder.scorer.scale)

    for path, vector in zip(files, embeddings, strict=True):
        others = [e for e in embeddings if e is not vector]
        if others and not OwnerVerifier(embedder, owner_from(others)).check_embedding(
                vector).is_owner:
            click.echo(f"edge-detect: warning: {display_path(path)} does not sound like the "
                       "other clips (below the threshold); enrol with clips of one voice",
                       err=True)
    saved = store.save(owner_from(embeddings))
    click.echo(f"enrolled {name} from {len(files)} clip{'s' if len(files) != 1 else ''} "
               f"(speaker threshold {owner_threshold:.4f}) in {saved}")
    if len(files) < 3:
        click.echo("edge-detect: warning: 3 or more clips make a steadier enrolment", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--owner", "owner_name", required=True, metavar="NAME",
              help="The enrolled owner the speech must belong to.")
@store_option
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: path, score, speech, similarity, label.")
@model_option
@speaker_model_option
@speech_model_option
@speech_threshold_option
@threads_option
def verify(files: tuple[Path, ...], owner_name: str, store_dir: Path | None, as_json: bool,
           model_path: Path | None, speaker_model_path: Path | None,
           speech_model_path: Path | None, speech_threshold: float | None,
           threads: int | None) -> None:
    """Is each FILE the owner's own live voice? bonafide, spoof, notowner or nospeech."""
    from edge_runtime.audio import display_path, load_audio
    from edge_runtime.speech_presence import NOSPEECH, NOTOWNER, SPOOF
    from edge_runtime.verify import OwnerVerifier

    scorer = _scorer(model_path, speech_model_path, speech_threshold, threads)
    verifier = OwnerVerifier.load(owner_name, store_dir, speaker_model_path, threads,
                                  detector_sha256=scorer.model.card.sha256)
    rate = verifier.embedder.card.frontend.sample_rate
    labels: set[str] = set()
    any_error = False
    for path in files:
        shown = display_path(path)
        try:
            audio = load_audio(path, rate)
            result = scorer.score_audio(audio, shown)
        except AudioError as error:
            any_error = True
            click.echo(f"edge-detect: error: {error}", err=True)
            continue
        check = verifier.check(audio, shown) if verifier.needs_check(result.label) else None
        label = verifier.label(result.label, check, result.score)
        labels.add(label)
        similarity = None if check is None else check.similarity
        speaker_score = None if check is None else check.speaker_score
        if as_json:
            click.echo(json.dumps({
                "path": shown, "score": None if result.score is None else round(result.score, 6),
                "speech": None if result.speech is None else round(result.speech, 6),
                "similarity": None if similarity is None else round(similarity, 6),
                "speaker_score": None if speaker_score is None else round(speaker_score, 6),
                "owner": owner_name, "label": label}, ensure_ascii=False))
        else:
            click.echo(f"{shown}\t{_fmt(result.score)}\t{_fmt(speaker_score)}\t{label}")
    if any_error:
        code = EXIT_INPUT_ERROR
    elif SPOOF in labels:
        code = EXIT_SPOOF
    elif NOTOWNER in labels:
        code = EXIT_NOT_OWNER
    elif NOSPEECH in labels:
        code = EXIT_NO_SPEECH
    else:
        code = EXIT_BONAFIDE
    sys.exit(code)
