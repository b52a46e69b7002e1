"""`edge-train gate ...`: build the non-speech set, train, export and evaluate the speech gate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_runtime.model import MODEL_DIR
from host_training.cli_options import fail as _fail
from host_training.nonspeech import DEFAULT_SOUND_PACKAGES

DEFAULT_NONSPEECH = Path("cache/nonspeech")
DEFAULT_EXTRA = Path("../data/extra")
nonspeech_option = click.option(
    "--nonspeech", "nonspeech_root", type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_NONSPEECH, show_default=True,
    help="The non-speech set written by `edge-train gate data`.")
speech_option = click.option(
    "--speech", "speech_roots", type=click.Path(path_type=Path, file_okay=False, exists=True),
    multiple=True, default=None,
    help="Speech corpora (protocols/ + <split>/flac); repeatable. Default: the spoofmix corpus "
         "and ../data/extra.")
cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
    default=Path("cache"), show_default=True, help="Folder for decoded-audio caches.")




def _speech_roots(given: tuple[Path, ...] | None) -> list[Path]:
    from host_training.datasets import default_data_root

    if given:
        return list(given)
    roots = [default_data_root()]
    if DEFAULT_EXTRA.is_dir():
        roots.append(DEFAULT_EXTRA)
    return roots


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def gate() -> None:
    """The speech gate: a tiny int8 model that tells speech from tones, music and noise."""


packages_option = click.option(
    "--packages", "packages_root", type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_SOUND_PACKAGES, show_default=True,
    help="Sound packages unpacked by `edge-train gate packages`.")


@gate.command()
@packages_option
def packages(packages_root: Path) -> None:
    """Download and unpack the game and desktop sound packages (apt-get download, dpkg -x)."""
    from host_training.nonspeech import fetch_sound_packages

    missing = fetch_sound_packages(packages_root, log=_log)
    if missing:
        _fail(f"{len(missing)} packages could not be downloaded: {', '.join(missing)}")
    click.echo(f"sound packages in {packages_root}")


@gate.command()
@packages_option
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The screen TSV (default: the one beside voice_screen.py).")
def screen(packages_root: Path, out_path: Path | None) -> None:
    """Transcribe every packaged sound file with Whisper tiny.en and flag voices (resumable).

    Needs the teacher extra (pip install -e '.[teacher]'). `edge-train gate data` leaves the
    flagged files out of the non-speech set.
    """
    from host_training.nonspeech import sound_files
    from host_training.teacher.encoder import TeacherUnavailable
    from host_training.voice_screen import SCREEN_FILE, screen_files

    out_path = out_path or SCREEN_FILE
    files = [(f.key, f.path) for f in sound_files(packages_root=packages_root)]
    _log(f"screening {len(files)} sound files for voices -> {out_path}")
    try:
        rows = screen_files(files, out_path, log=_log)
    except TeacherUnavailable as error:
        _fail(str(error))
    click.echo(f"{sum(r.voice for r in rows)} of {len(rows)} files flagged as voices")


@gate.command()
@click.option("--out", "out_root", type=click.Path(path_type=Path, file_okay=False),
              default=DEFAULT_NONSPEECH, show_default=True)
@packages_option
def data(out_root: Path, packages_root: Path) -> None:
    """Build the non-speech set: generated signals, fluidsynth music, packaged sounds.

    Needs fluidsynth and General MIDI soundfonts for the music (apt install fluidsynth
    fluid-soundfont-gm timgm6mb-soundfont), the sound and MIDI files of installed Debian
    packages and the sound packages of `edge-train gate packages` (see
    edge_runtime/models/speech_gate.md for the lists). Files the voice screen flags are left out.
    """
    from host_training.nonspeech import build_nonspeech

    build_nonspeech(out_root, log=_log, packages_root=packages_root)


@gate.command()
@click.option("--out", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Run folder: best.keras, config.json, metrics.json.")
@nonspeech_option
@speech_option
@cache_option
@click.option("--detector", "detector_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The detector whose framing the gate shares (default: shipped).")
@click.option("--epochs", type=click.IntRange(1), default=None)
@click.option("--seed", type=int, default=None)
def train(run_dir: Path, nonspeech_root: Path, speech_roots: tuple[Path, ...], cache_dir: Path,
          detector_path: Path | None, epochs: int | None, seed: int | None) -> None:
    """Train the gate on speech (bona fide and spoofed alike) against the non-speech set."""
    from dataclasses import replace

    from edge_runtime.model import ModelCard, card_path_for, default_model_path
    from host_training.speech_gate import GateTrainConfig, train_gate

    card = ModelCard.from_json(card_path_for(detector_path or default_model_path()))
    config = GateTrainConfig()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if seed is not None:
        config = replace(config, seed=seed)
    try:
        summary = train_gate(card.frontend, _speech_roots(speech_roots), nonspeech_root, run_dir,
                             config, cache_dir, log=_log)
    except FileNotFoundError as error:
        _fail(str(error))
    click.echo(f"best epoch {summary['best_epoch']}; run in {run_dir}")


@gate.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              required=True)
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              default=MODEL_DIR / "speech_gate.tflite", show_default=True)
@cache_option
def export(run_dir: Path, out_path: Path, cache_dir: Path) -> None:
    """Export the gate to full-integer int8 TFLite with its card (asserts int8/int32 only)."""
    from host_training.speech_gate import export_gate

    export_gate(run_dir, out_path, cache_dir, log=_log)


@gate.command()
@click.option("--speech-model", "speech_model_path",
              type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The speech gate whose card gets the threshold (default: the shipped one).")
@nonspeech_option
@speech_option
@cache_option
@click.option("--dev-only", is_flag=True,
              help="Validation speech is spoofmix dev alone: for a gate trained on whole train "
                   "splits, which has heard their validation part.")
def threshold(speech_model_path: Path | None, nonspeech_root: Path,
              speech_roots: tuple[Path, ...], cache_dir: Path, dev_only: bool) -> None:
    """Choose the gate's threshold again on validation speech and non-speech (never on a test
    set or the extra corpus's dev split) and write it on the gate's card."""
    from edge_runtime.errors import EdgeDetectError
    from edge_runtime.model import default_speech_model_path
    from host_training.datasets import DatasetError
    from host_training.speech_gate import rethreshold_gate

    try:
        rethreshold_gate(speech_model_path or default_speech_model_path(),
                         _speech_roots(speech_roots), nonspeech_root, cache_dir, dev_only,
                         log=_log)
    except (DatasetError, EdgeDetectError, FileNotFoundError) as error:
        _fail(str(error))


@gate.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The spoof detector (default: the shipped one).")
@click.option("--speech-model", "speech_model_path",
              type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The speech gate (default: the shipped one).")
@nonspeech_option
@speech_option
@cache_option
@click.option("--split", "splits", multiple=True, default=None,
              help="ROOT_NAME:SPLIT pairs to measure speech on (default: spoofmix eval and dev, "
                   "extra dev).")
@click.option("--update-card", is_flag=True, help="Record the figures on the gate's card.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the full results (with file lists) as JSON.")
def evaluate(model_path: Path | None, speech_model_path: Path | None, nonspeech_root: Path,
             speech_roots: tuple[Path, ...], cache_dir: Path, splits: tuple[str, ...] | None,
             update_card: bool, json_out: Path | None) -> None:
    """Non-speech accepted as bona fide, speech called nospeech, EER with and without the gate."""
    from edge_runtime.errors import EdgeDetectError
    from edge_runtime.model import default_speech_model_path
    from host_training.datasets import DatasetError
    from host_training.gate_evaluate import evaluate_gate, record_on_gate_card

    roots = _speech_roots(speech_roots)
    pairs: list[tuple[Path, str]] = []
    if splits:
        by_name = {root.name: root for root in roots}
        for item in splits:
            name, _, split = item.partition(":")
            if name not in by_name or not split:
                _fail(f"--split {item!r}: expected ROOT_NAME:SPLIT with a root of --speech")
            pairs.append((by_name[name], split))
    else:
        pairs = [(roots[0], "eval"), (roots[0], "dev")] + [(r, "dev") for r in roots[1:]]
    try:
        results = evaluate_gate(model_path, speech_model_path, nonspeech_root, pairs, cache_dir,
                                log=_log)
    except (DatasetError, EdgeDetectError, FileNotFoundError) as error:
        _fail(str(error))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2) + "\n")
    if update_card:
        record_on_gate_card(speech_model_path or default_speech_model_path(), results)
        click.echo("figures recorded on the speech gate's card")
