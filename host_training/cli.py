"""The `edge-train` command line (host side, needs the `train` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_runtime.errors import EXIT_RUNTIME_FAULT
from host_training.cli_options import cache_option, data_option, report_written
from host_training.cli_options import fail as _fail
from host_training.evaluate import CONDITIONS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train, export and evaluate edge-detect models (host side, TensorFlow)."""


def _register_vocoder() -> None:
    from host_training.vocoders.cli import build_cli as vocoder_cli

    main.add_command(vocoder_cli(), name="vocoder")


def _register_teacher() -> None:
    from host_training.teacher.cli import build_cli as teacher_cli

    main.add_command(teacher_cli(), name="teacher")


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Training config TOML (default: built-in defaults).")
@click.option("--out", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Run folder: config, history, checkpoints, metrics.")
@data_option
@cache_option
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the config.")
@click.option("--seed", type=int, default=None, help="Override the config.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Data worker processes (default: one per CPU core).")
def train(config_path: Path | None, run_dir: Path, data_root: Path | None, cache_dir: Path,
          epochs: int | None, seed: int | None, workers: int | None) -> None:
    """Train the Keras model (any Keras 3 backend: KERAS_BACKEND=tensorflow or jax); keeps the
    checkpoint with the best dev EER. Data streams from decoded shards in --cache; rerunning
    the same command on an interrupted --out resumes it after its last complete epoch."""
    from dataclasses import replace

    from host_training.config import load_config
    from host_training.datasets import DatasetError
    from host_training.train import CollapsedRunError, ResumeError
    from host_training.train import train as run_training

    try:
        config = load_config(config_path)
    except (OSError, ValueError, TypeError) as error:
        _fail(f"{config_path}: {error}")
    if epochs is not None or seed is not None:
        config = replace(config, training=replace(
            config.training,
            epochs=epochs if epochs is not None else config.training.epochs,
            seed=seed if seed is not None else config.training.seed))
    try:
        result = run_training(config, run_dir, cache_dir, data_root, workers=workers)
    except (DatasetError, ResumeError) as error:
        _fail(str(error))
    except CollapsedRunError as error:
        _fail(str(error), EXIT_RUNTIME_FAULT)
    click.echo(f"best dev EER {result.best_dev_eer * 100:.2f} % at epoch {result.best_epoch}; "
               f"run in {result.run_dir}")


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              required=True, help="A run folder written by `edge-train train`.")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Where to write the .tflite and its .json card "
              "(default: the shipped model, edge_runtime/models/edge_detect.tflite).")
@click.option("--range-outlier-share", type=float, default=None,
              help="Share of each activation's calibration values left outside its int8 range "
              "at each end, in [0, 0.5); 0: the converter's min / max (default: "
              "host_training.int8_ranges.RANGE_OUTLIER_SHARE).")
@data_option
@cache_option
def export(run_dir: Path, out_path: Path | None, range_outlier_share: float | None,
           data_root: Path | None, cache_dir: Path) -> None:
    """Export the run's best model to full-integer int8 TFLite plus its model card."""
    from edge_runtime.model import default_model_path
    from host_training.datasets import DatasetError
    from host_training.export import ExportError, export_run
    from host_training.int8_ranges import RANGE_OUTLIER_SHARE

    share = RANGE_OUTLIER_SHARE if range_outlier_share is None else range_outlier_share
    try:
        export_run(run_dir, out_path or default_model_path(), data_root, cache_dir,
                   outlier_share=share)
    except (DatasetError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    except ExportError as error:
        _fail(f"{run_dir}: {error}", EXIT_RUNTIME_FAULT)


@main.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The .tflite to evaluate (default: the shipped model).")
@data_option
@cache_option
@click.option("--split", "splits", multiple=True, default=("dev", "eval"), show_default=True)
@click.option("--condition", "conditions", multiple=True,
              type=click.Choice(CONDITIONS),
              help="Also measure EER under this degradation (repeatable).")
@click.option("--update-card", is_flag=True, help="Record the metrics on the model card.")
@click.option("--det", "det_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write a DET curve PNG (one line per split).")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path, dir_okay=False,
              exists=True), default=None,
              help="The float Keras model (a run's best.keras): scored side by side.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the full results as JSON.")
@click.option("--name", "corpus_name", default="",
              help="Record each split as NAME/SPLIT (e.g. extra/dev), so splits of several "
                   "corpora can sit side by side on the card.")
def evaluate(model_path: Path | None, data_root: Path | None, cache_dir: Path,
             splits: tuple[str, ...], conditions: tuple[str, ...], update_card: bool,
             det_path: Path | None, keras_path: Path | None, json_out: Path | None,
             corpus_name: str) -> None:
    """EER (pooled and per attack), minDCF and accuracy of the int8 model per split."""
    from edge_runtime.atomic import write_text_atomically
    from edge_runtime.errors import EdgeDetectError
    from edge_runtime.model import default_model_path
    from host_training.datasets import DatasetError, default_data_root
    from host_training.evaluate import evaluate_model, markdown_table
    from host_training.model_card import record_metrics

    try:
        results = evaluate_model(model_path, data_root or default_data_root(), list(splits),
                                 cache_dir, conditions, det_path, keras_path)
    except (DatasetError, EdgeDetectError) as error:
        _fail(str(error))
    if corpus_name:
        results = {f"{corpus_name}/{split}": values for split, values in results.items()}
    click.echo(markdown_table(results))
    if json_out:
        write_text_atomically(json_out, json.dumps(results, indent=2) + "\n")
    if update_card:
        record_metrics(model_path or default_model_path(), results)
        click.echo("metrics recorded on the model card")


@main.command()
@click.argument("results", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the summary as JSON.")
def seeds(results: tuple[Path, ...], json_out: Path | None) -> None:
    """Mean ± spread over seeds of `edge-train evaluate --json` RESULTS (one file per seed)."""
    from edge_runtime.atomic import write_text_atomically
    from host_training.seeds import load_results, markdown, summarize_seeds

    try:
        summary = summarize_seeds(load_results(list(results)))
    except (ValueError, KeyError, TypeError) as error:
        _fail(f"not an `edge-train evaluate --json` result: {error}")
    if not summary:
        _fail("the results share no split")
    click.echo(markdown(summary))
    if json_out:
        write_text_atomically(json_out, json.dumps(summary, indent=2) + "\n")


@main.command()
@click.argument("models", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False, exists=True))
@data_option
@cache_option
@click.option("--split", default="dev", show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the results as JSON.")
@click.option("--scores", "scores_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None,
              help="Write the ensemble's probability of every clip of the split to this JSON "
                   "map ({audio path: probability}, what [training] teacher_scores reads). "
                   "An existing map keeps its other clips, so several corpora can share one.")
def ensemble(models: tuple[Path, ...], data_root: Path | None, cache_dir: Path, split: str,
             json_out: Path | None, scores_out: Path | None) -> None:
    """EER of several int8 MODELS (e.g. seeds of one recipe) scored together, by the mean of
    their logits, beside each one's own: do the seeds make the same mistakes? With --scores,
    also the soft targets that distil the ensemble into one model."""
    from edge_runtime.atomic import write_text_atomically
    from edge_runtime.errors import EdgeDetectError
    from host_training.datasets import DatasetError, default_data_root
    from host_training.ensemble import ensemble_split, markdown

    if len(models) < 2:
        _fail("give at least two models")
    known: dict[str, float] = {}
    if scores_out is not None and scores_out.exists():
        try:
            known = json.loads(scores_out.read_text())
            if not isinstance(known, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            _fail(f"{scores_out}: not a score map ({error}); nothing written")
    try:
        result, by_path = ensemble_split(list(models), data_root or default_data_root(), split,
                                         cache_dir)
    except (DatasetError, EdgeDetectError, ValueError) as error:
        _fail(str(error))
    click.echo(markdown(result))
    if json_out:
        write_text_atomically(json_out, json.dumps(result, indent=2) + "\n")
    if scores_out:
        write_text_atomically(scores_out, json.dumps({**known, **by_path}) + "\n")
        click.echo(f"{len(by_path)} clip scores written to {scores_out} "
                   f"({len(known) + len(by_path) - len(known.keys() & by_path.keys())} in all)")


@main.group(invoke_without_command=True)
@data_option
@click.option("--split", default="train", show_default=True,
              help="Split whose bona fide clips get vocoded twins.")
@click.option("--out", "out_root", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Corpus root to write (protocols/<split>.txt + <split>/flac). "
              "Required unless an engine command follows.")
@click.option("--vocoders", default=None,
              help="Comma-separated: world, mlsa, griffinlim, lpc (default: all installed).")
@click.option("--limit", type=click.IntRange(0), default=0,
              help="Only the first N bona fide clips (0 = all).")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def synth(ctx: click.Context, data_root: Path | None, split: str, out_root: Path | None,
          vocoders: str | None, limit: int, jobs: int, seed: int) -> None:
    """Spoofs made from bona fide speech: copy-synthesis of every bona fide clip of a split
    through several vocoders (same speaker, words, level). Resumes where it stopped; add the
    output as an extra training root.

    The engine commands (kokoro, hifigan) make modern neural spoofs; they need the `synth`
    extra (pip install -e '.[synth]')."""
    if ctx.invoked_subcommand is not None:
        return
    if out_root is None:
        raise click.UsageError("Missing option '--out'.")
    from host_training.datasets import DatasetError, default_data_root
    from host_training.synth import SynthError, available_vocoders, synthesize_split

    names = [v.strip() for v in vocoders.split(",") if v.strip()] if vocoders else \
        available_vocoders()
    try:
        summary = synthesize_split(data_root or default_data_root(), split, out_root, names,
                                   limit=limit, jobs=jobs, seed=seed)
    except (DatasetError, SynthError, OSError) as error:
        _fail(str(error))
    report_written(summary, "twins")


def _register_synth_engines() -> None:
    from host_training.engines import hifigan_v1, kokoro

    synth.add_command(kokoro.build_cli(), name="kokoro")
    synth.add_command(hifigan_v1.build_cli(), name="hifigan")


@main.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The .tflite whose card to render (default: the shipped model).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Default: README.md beside the model.")
def card(model_path: Path | None, out_path: Path | None) -> None:
    """Write the human model card (markdown) from the model's JSON card."""
    from edge_runtime.model import default_model_path
    from host_training.model_card import write_model_card

    model_path = model_path or default_model_path()
    out_path = out_path or model_path.with_name("README.md")
    write_model_card(model_path, out_path)
    click.echo(f"wrote {out_path}")


@main.command()
@click.option("--bonafide", "bonafide_dir", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of bona fide recordings made with the target microphone.")
@click.option("--spoof", "spoof_dir", type=click.Path(path_type=Path, exists=True,
              file_okay=False), default=None,
              help="Optional folder of spoofed recordings: reports what the threshold lets in.")
@click.option("--target-frr", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.05,
              show_default=True, help="Share of bona fide clips allowed to be called spoof.")
@click.option("--model", "model_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The .tflite to calibrate (default: the shipped model).")
@click.option("--write-card", is_flag=True,
              help="Store the threshold on the model card (the .tflite is unchanged).")
def calibrate(bonafide_dir: Path, spoof_dir: Path | None, target_frr: float,
              model_path: Path | None, write_card: bool) -> None:
    """Threshold at a target false-rejection rate for one microphone, from its recordings.

    Uses the same calibration code as the board's `edge-detect calibrate`, on clip scores
    (what `edge-detect classify` compares with the threshold)."""
    import numpy as np

    from edge_runtime.audio import audio_files_in
    from edge_runtime.calibration import calibrate as calibrate_scores
    from edge_runtime.clip import ClipScorer
    from edge_runtime.errors import EdgeDetectError
    from edge_runtime.metrics import equal_error_rate
    from edge_runtime.model import SpoofModel, card_path_for, default_model_path
    from edge_runtime.wording import counted
    from host_training.model_card import update_card

    def folder_scores(folder: Path) -> np.ndarray:
        files = audio_files_in(folder)
        if not files:
            _fail(f"{folder}: no audio files")
        scores = []
        for path in files:
            try:
                scores.append(scorer.score_file(path).score)
            except EdgeDetectError as error:
                click.echo(f"edge-train: skipped: {error}", err=True)
        return np.asarray(scores)

    try:
        scorer = ClipScorer(SpoofModel(model_path))
    except EdgeDetectError as error:
        _fail(str(error))
    bona = folder_scores(bonafide_dir)
    if bona.size == 0:
        _fail(f"{bonafide_dir}: no readable bona fide recordings")
    result = calibrate_scores(bona, target_frr)
    click.echo(f"{result.describe().replace('window', 'clip')}; "
               f"card threshold was {scorer.model.threshold:.6f}")
    if target_frr > 0 and not result.enough:
        click.echo(f"warning: {counted(result.windows, 'clip')} cannot resolve a {target_frr:.1%} "
                   "false-rejection rate; record more", err=True)
    if spoof_dir is not None:
        spoof = folder_scores(spoof_dir)
        if spoof.size:
            accepted = float(np.mean(spoof < result.threshold))
            click.echo(f"spoof accepted at this threshold: {accepted:.1%} of {spoof.size}; "
                       f"EER on these recordings {equal_error_rate(bona, spoof).eer:.1%}")
    if write_card:
        written = model_path or default_model_path()
        update_card(written, threshold=result.threshold,
                    threshold_source=f"edge-train calibrate: {target_frr:.1%} FRR on "
                                     f"{counted(result.windows, 'clip')} from {bonafide_dir}")
        click.echo(f"threshold written to {card_path_for(written)}")


_register_vocoder()
_register_teacher()
_register_synth_engines()


def _register_gate() -> None:
    from host_training.gate_cli import gate

    main.add_command(gate, name="gate")


_register_gate()
