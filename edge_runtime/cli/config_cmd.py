"""`edge-detect config check FILE...`: validate device profiles, one line per file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edge_runtime.errors import EXIT_INPUT_ERROR


@click.group()
def config() -> None:
    """Device profiles (firmware_config/*.toml)."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate profiles: 'ok' and a summary, or the bad field and why (exit 2)."""
    from edge_runtime.config import load_profile
    from edge_runtime.errors import ConfigError

    bad = False
    for path in files:
        try:
            profile = load_profile(path)
            if profile.model.path is not None and not profile.model.path.is_file():
                raise ConfigError(f"{path}: model.path: {profile.model.path} does not exist")
            speaker = profile.model.speaker_model
            if speaker is not None and not speaker.is_file():
                raise ConfigError(f"{path}: model.speaker_model: {speaker} does not exist")
        except ConfigError as error:
            bad = True
            click.echo(f"edge-detect: error: {error}", err=True)
            continue
        audio, gate, smoothing = profile.audio, profile.gate, profile.smoothing
        device = "default" if audio.device is None else audio.device
        rate = "device default" if audio.rate is None else f"{audio.rate} Hz"
        threshold = ("model card" if profile.model.threshold is None
                     else f"{profile.model.threshold:.4f}")
        rule = (f"{smoothing.method} of {smoothing.n}" if smoothing.method == "mean"
                else f"{smoothing.k} of {smoothing.n}")
        owner = "" if profile.owner is None else f", owner {profile.owner}"
        click.echo(f"{path}: ok ({profile.name}: mic {device} at {rate}, hop "
                   f"{profile.stream.hop:g} s, gate {gate.kind}, {rule}, threshold "
                   f"{threshold}{owner})")
    if bad:
        sys.exit(EXIT_INPUT_ERROR)
