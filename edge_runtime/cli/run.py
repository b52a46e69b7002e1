"""`edge-detect run`: live detection from a microphone, a file played as if live, or stdin.

Exit codes: 0 bona fide / 1 spoof / 4 no speech / 5 not the owner (with --owner) (with --once:
the first utterance's decision, and 4 if the input ends before one; otherwise 1 if any utterance
was spoof, else 0 if any was bona fide speech (the owner's, with --owner), else 5 if any was
someone else's, else 4), 2 input or usage error, 3 device or model fault, 130 on Ctrl-C,
143 on SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from edge_runtime.cli.options import (
    model_option,
    speech_model_option,
    speech_threshold_option,
    threads_option,
)
from edge_runtime.defaults import (
    CAPTURE_RATE_RANGE,
    CHANNELS_RANGE,
    CHUNK_RANGE,
    DEFAULT_HOP_SECONDS,
    HOP_RANGE,
)
from edge_runtime.errors import EXIT_INTERRUPTED, EXIT_TERMINATED


class Terminated(BaseException):
    """Raised by the SIGTERM handler so every `finally` runs (device closed, clips intact)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def setup_logging() -> None:
    """Faults and notices go to stderr as one line each, like every other error."""
    logger = logging.getLogger("edge_runtime")
    for old in [h for h in logger.handlers if getattr(h, "_edge_detect", False)]:
        logger.removeHandler(old)  # bound to an earlier sys.stderr (tests invoke repeatedly)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edge-detect: %(message)s"))
    handler._edge_detect = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="A firmware_config profile (TOML); flags override its fields.")
@click.option("--input", "input_path", default=None, metavar="FILE|-",
              help="Audio file played as if live, or - for raw S16_LE PCM on stdin "
                   "(default: the microphone).")
@click.option("--fast", is_flag=True, help="With --input FILE: as fast as possible, not real time.")
@click.option("--rate", type=click.IntRange(*CAPTURE_RATE_RANGE), default=None,
              help="Sample rate of stdin PCM (default 16000) or of the microphone.")
@click.option("--channels", type=click.IntRange(*CHANNELS_RANGE), default=None,
              help="Channels of stdin PCM (default 1) or of the microphone.")
@click.option("--device", default=None, help="Microphone index or part of its name.")
@click.option("--chunk", type=click.IntRange(*CHUNK_RANGE), default=None,
              help="Frames per microphone read.")
@model_option
@speech_model_option
@threads_option
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Spoof threshold (default: the profile's, else the model card's).")
@speech_threshold_option
@click.option("--hop", type=click.FloatRange(*HOP_RANGE), default=None,
              help=f"Seconds between scored windows (default {DEFAULT_HOP_SECONDS}).")
@click.option("--gate", type=click.Choice(["energy", "webrtcvad", "off"]), default=None,
              help="Speech gate.")
@click.option("--smoothing", type=click.Choice(["mean", "k_of_n"]), default=None,
              help="How window scores become an utterance's decision.")
@click.option("--on-spoof", default=None, metavar="CMD", help="Shell command run on spoof.")
@click.option("--on-bonafide", default=None, metavar="CMD",
              help="Shell command run on bona fide.")
@click.option("--hook-timeout", type=click.FloatRange(0.0, 3600.0, min_open=True), default=None,
              help="Seconds a hook may run before it is killed.")
@click.option("--gpio-pin", default=None, help="GPIO pin made active on spoof (gpiozero name).")
@click.option("--save-clips", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Save the audio behind each spoof decision here.")
@click.option("--clips-max-mb", type=click.FloatRange(0.0, 1e6, min_open=True), default=None,
              help="Size bound of the clip folder (oldest deleted first).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of human lines.")
@click.option("--once", is_flag=True,
              help="Exit after the first decision: 0 bona fide, 1 spoof, 4 no speech "
                   "(also when the input ends first), 5 not the owner (with --owner), "
                   "3 on a fault.")
@click.option("--decisions-only", is_flag=True, help="Print decisions, not every window.")
@click.option("--owner", "owner_name", default=None, metavar="NAME",
              help="Only this enrolled owner's bona fide speech passes (edge-detect enrol); "
                   "other voices are 'notowner' (exit 5).")
@click.option("--store", "owner_store", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Folder of owner records (default: the per-user store).")
@click.option("--speaker-model", "speaker_model_path", type=click.Path(path_type=Path),
              default=None, help="The speaker embedder (default: the shipped one).")
def run(config_path: Path | None, input_path: str | None, fast: bool, rate: int | None,
        channels: int | None, device: str | None, chunk: int | None, model_path: Path | None,
        speech_model_path: Path | None, threads: int | None, threshold: float | None,
        speech_threshold: float | None, hop: float | None, gate: str | None,
        smoothing: str | None, on_spoof: str | None, on_bonafide: str | None,
        hook_timeout: float | None, gpio_pin: str | None, save_clips: Path | None,
        clips_max_mb: float | None, as_json: bool, once: bool, decisions_only: bool,
        owner_name: str | None, owner_store: Path | None,
        speaker_model_path: Path | None) -> None:
    """Listen and judge each utterance: bona fide speech, spoofed speech, or no speech."""
    from dataclasses import replace

    from edge_runtime.actions import Actions, ClipSaver, GpioLine, HookRunner, run_live
    from edge_runtime.config import ClipsConfig, GpioConfig, Profile, load_profile, with_overrides
    from edge_runtime.model import SpoofModel
    from edge_runtime.speech_presence import SpeechPresence
    from edge_runtime.stream import detector_from_profile

    setup_logging()
    if fast and (input_path is None or input_path == "-"):
        raise click.UsageError("--fast applies to --input FILE only")
    profile = load_profile(config_path) if config_path is not None else Profile()
    profile = with_overrides(
        profile,
        audio={"device": _device(device), "chunk": chunk,
               **({} if input_path == "-" else {"rate": rate, "channels": channels})},
        model={"path": model_path, "threads": threads, "threshold": threshold,
               "speech_model": speech_model_path, "speech_threshold": speech_threshold,
               "speaker_model": speaker_model_path},
        stream={"hop": hop},
        gate={"kind": gate},
        smoothing={"method": smoothing},
        actions={"on_spoof": on_spoof, "on_bonafide": on_bonafide, "hook_timeout": hook_timeout},
    )
    if owner_name is not None or owner_store is not None:
        profile = replace(profile, owner=owner_name or profile.owner,
                          owner_store=owner_store or profile.owner_store)
    if profile.owner_store is not None and profile.owner is None:
        raise click.UsageError("--store needs --owner (or the profile's owner field)")
    actions_cfg = profile.actions
    if gpio_pin is not None:
        base = actions_cfg.gpio or GpioConfig(pin=gpio_pin)
        actions_cfg = replace(actions_cfg, gpio=replace(base, pin=_device(gpio_pin)))
    if save_clips is not None or clips_max_mb is not None:
        if save_clips is None and actions_cfg.clips is None:
            raise click.UsageError("--clips-max-mb needs --save-clips or [actions.clips]")
        base_clips = actions_cfg.clips or ClipsConfig(dir=save_clips or Path("."))
        actions_cfg = replace(actions_cfg, clips=replace(
            base_clips, dir=save_clips or base_clips.dir,
            max_mb=clips_max_mb if clips_max_mb is not None else base_clips.max_mb))

    model = SpoofModel(profile.model.path, num_threads=profile.model.threads)
    frontend_config = model.frontend_config
    limit = profile.model.threshold if profile.model.threshold is not None else model.threshold
    speech = SpeechPresence.load(frontend_config, profile.model.speech_model,
                                 profile.model.speech_threshold,
                                 num_threads=profile.model.threads)
    owner = None
    if profile.owner is not None:
        from edge_runtime.verify import OwnerVerifier

        # Loaded before listening: a missing owner or embedder is an error now, not a
        # silent "anyone may pass" later. A profile's own spoof threshold is kept as given;
        # otherwise owner decisions use the owner spoof threshold calibrated for this detector.
        owner = OwnerVerifier.load(
            profile.owner, profile.owner_store, profile.model.speaker_model,
            profile.model.threads,
            detector_sha256=model.card.sha256 if profile.model.threshold is None else None)
        if owner.embedder.card.frontend.sample_rate != frontend_config.sample_rate:
            from edge_runtime.errors import ModelError

            raise ModelError("the speaker embedder and the detector run at different "
                             "sample rates")
    detector = detector_from_profile(profile, model, frontend_config, limit,
                                     keep_clips=actions_cfg.clips is not None, speech=speech,
                                     owner=owner)
    target_rate = frontend_config.sample_rate

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    actions = None
    interrupted = False
    try:
        gpio = None
        if actions_cfg.gpio is not None:
            g = actions_cfg.gpio
            gpio = GpioLine(g.pin, trigger=g.trigger, active_high=g.active_high, hold=g.hold)
        hooks = None
        if actions_cfg.on_spoof or actions_cfg.on_bonafide:
            hooks = HookRunner(actions_cfg.on_spoof, actions_cfg.on_bonafide,
                               actions_cfg.hook_timeout)
        clips = None
        if actions_cfg.clips is not None:
            clips = ClipSaver(actions_cfg.clips.dir, int(actions_cfg.clips.max_mb * 1e6),
                              target_rate)
        actions = Actions(sys.stdout, as_json=as_json, threshold=limit,
                          hooks=hooks, gpio=gpio, clips=clips, show_windows=not decisions_only)
        chunks = _source(input_path, fast, rate, channels, profile, target_rate, detector)
        code = run_live(chunks, detector, actions, once=once)
    except KeyboardInterrupt:
        interrupted = True
        logging.getLogger("edge_runtime").warning("interrupted (Ctrl-C); stopped cleanly")
        code = EXIT_INTERRUPTED
    except Terminated:
        interrupted = True
        logging.getLogger("edge_runtime").warning("terminated (SIGTERM); stopped cleanly")
        code = EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
        if actions is not None:
            actions.close(wait=not interrupted)
    sys.exit(code)


def _source(input_path: str | None, fast: bool, rate: int | None, channels: int | None,
            profile: Any, target_rate: int, detector: Any):
    from edge_runtime import mic

    log = logging.getLogger("edge_runtime")
    if input_path == "-":
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise click.UsageError("--input - reads raw PCM from a pipe, e.g. "
                                   "arecord -r 16000 -c 1 -f S16_LE -t raw | edge-detect run "
                                   "--input -")
        return mic.pcm_chunks(stdin, rate or 16000, channels or 1, target_rate,
                              chunk_frames=profile.audio.chunk)
    if input_path is not None:
        return mic.file_chunks(input_path, target_rate, realtime=not fast)
    audio = profile.audio

    def open_source() -> mic.MicSource:
        return mic.MicSource(target_rate, device=audio.device, rate=audio.rate,
                             channels=audio.channels, chunk=audio.chunk,
                             stall_timeout=audio.stall_timeout)

    def opened(source: mic.MicSource) -> None:
        log.info("listening on %s", source.description)

    def reconnected() -> None:
        if detector.in_utterance:
            log.warning("utterance in progress dropped (gap in the audio)")
        detector.reset()

    return mic.reconnecting(open_source, audio.retries, audio.retry_backoff,
                            on_reconnect=reconnected, on_open=opened)
