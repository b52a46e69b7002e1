"""`edge-detect calibrate --config FILE`: set a profile's threshold from the owner's voice."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from edge_runtime.cli.options import model_option, threads_option
from edge_runtime.defaults import CALIBRATION_SECONDS_RANGE


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    from edge_runtime.audio import audio_files_in
    from edge_runtime.errors import AudioError

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = audio_files_in(path)
            if not files:
                raise AudioError(f"{path}: no audio files in this folder")
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            raise AudioError(f"{path}: no such file or folder")
    return found


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="The profile whose [model] threshold is rewritten.")
@click.option("--seconds", type=click.FloatRange(*CALIBRATION_SECONDS_RANGE), default=None,
              help="Seconds to record (default: the profile's calibration.seconds).")
@click.option("--files", "files", multiple=True, type=click.Path(path_type=Path),
              help="Bona fide recordings (files or folders) instead of the microphone; "
                   "repeatable.")
@click.option("--target-frr", type=click.FloatRange(0.0, 1.0, max_open=True), default=None,
              help="Share of bona fide windows allowed to be rejected "
                   "(default: the profile's calibration.target_frr).")
@click.option("--dry-run", is_flag=True, help="Print the threshold, do not write the profile.")
@model_option
@threads_option
def calibrate(config_path: Path, seconds: float | None, files: tuple[Path, ...],
              target_frr: float | None, dry_run: bool, model_path: Path | None,
              threads: int | None) -> None:
    """Record the owner's bona fide speech and write a threshold for this microphone."""
    from edge_runtime import mic
    from edge_runtime.calibration import bonafide_window_scores, calibrate
    from edge_runtime.cli.run import setup_logging
    from edge_runtime.config import load_profile, write_threshold
    from edge_runtime.errors import AudioError
    from edge_runtime.model import SpoofModel
    from edge_runtime.stream import detector_from_profile
    from edge_runtime.wording import counted

    setup_logging()
    log = logging.getLogger("edge_runtime")
    profile = load_profile(config_path)
    target = profile.calibration.target_frr if target_frr is None else target_frr
    model = SpoofModel(model_path or profile.model.path,
                       num_threads=threads or profile.model.threads)
    fe = model.frontend_config
    rate = fe.sample_rate

    def make_detector():
        # The threshold does not change window scores; the card's is a placeholder here.
        return detector_from_profile(profile, model, fe, model.threshold)

    if files:
        paths = _expand(files)
        recordings = [mic.file_chunks(p, rate, realtime=False) for p in paths]
        what = f"{len(paths)} file(s)"
    else:
        duration = seconds or profile.calibration.seconds
        audio = profile.audio
        source = mic.MicSource(rate, device=audio.device, rate=audio.rate,
                               channels=audio.channels, chunk=audio.chunk,
                               stall_timeout=audio.stall_timeout)

        def recording():
            with source:
                log.info("recording %.0f s from %s: speak normally", duration,
                         source.description)
                wanted = int(duration * rate)
                got = 0
                started = time.monotonic()
                for chunk in source:
                    piece = chunk[: wanted - got]
                    got += piece.shape[0]
                    yield piece
                    if got >= wanted:
                        break
                log.info("recorded %.1f s in %.1f s", got / rate, time.monotonic() - started)
                if source.dropped_frames:
                    log.warning("input overflow: %d frames dropped", source.dropped_frames)

        recordings = [recording()]
        what = f"{duration:g} s from the microphone"
    scores = bonafide_window_scores(make_detector, recordings)
    if scores.size == 0:
        raise AudioError(f"no speech heard in {what} (check the microphone level and "
                         "gate.threshold_db)")
    result = calibrate(scores, target)
    if not result.enough:
        log.warning("only %s: too few to resolve a %.1f%% FRR; record longer",
                    counted(result.windows, "window"), target * 100)
    if dry_run:
        click.echo(f"{config_path}: {result.describe()} (not written: --dry-run)")
        return
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    write_threshold(config_path, result.threshold,
                    comment=f"calibrated {stamp}: FRR {target:.1%} on "
                            f"{counted(result.windows, 'window')}")
    click.echo(f"{config_path}: {result.describe()}; written")
