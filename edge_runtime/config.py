"""Device profiles (``firmware_config/*.toml``) -> frozen dataclasses; ConfigError on any problem.

Every field is checked for type and range, and unknown fields are refused (a typo such as
``treshold`` would otherwise be silently ignored on a lock). Each error names the field and the
reason in one line: ``rpi4.toml: gate.threshold_db: expected a number, got 'loud'``.
Relative paths in a profile are resolved against the profile's own folder.
The schema is documented in ``firmware_config/README.md``.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edge_runtime.atomic import write_text_atomically
from edge_runtime.defaults import (
    CALIBRATION_SECONDS_RANGE,
    CAPTURE_RATE_RANGE,
    CHANNELS_RANGE,
    CHUNK_RANGE,
    DEFAULT_HOP_SECONDS,
    HOP_RANGE,
    THREADS_RANGE,
)
from edge_runtime.errors import ConfigError

GATE_KINDS = ("energy", "webrtcvad", "off")
SMOOTHING_METHODS = ("mean", "k_of_n")
GPIO_TRIGGERS = ("spoof", "bonafide")


@dataclass(frozen=True)
class AudioConfig:
    device: int | str | None = None  # index, or part of the name; None: the system default
    rate: int | None = None  # capture rate; None: the device's default rate
    channels: int = 1
    chunk: int = 1024  # frames per read
    retries: int = 5  # reopen attempts after the device fails, before exit 3
    retry_backoff: float = 0.5  # seconds before the first retry, doubled each time
    stall_timeout: float = 2.0  # seconds without audio before the device counts as gone


@dataclass(frozen=True)
class ModelConfig:
    path: Path | None = None  # None: the shipped model
    threads: int | None = None
    threshold: float | None = None  # None: the model card's threshold
    speech_model: Path | None = None  # the speech gate; None: the shipped one
    speech_threshold: float | None = None  # None: the speech gate card's threshold
    speaker_model: Path | None = None  # the speaker embedder (with an owner); None: shipped


@dataclass(frozen=True)
class StreamConfig:
    hop: float = DEFAULT_HOP_SECONDS
    max_utterance: float = 10.0  # an utterance longer than this is decided and a new one starts


@dataclass(frozen=True)
class GateConfig:
    kind: str = "energy"
    threshold_db: float = -50.0  # absolute floor for speech, dBFS
    margin_db: float = 10.0  # speech must also be this far above the tracked noise floor
    min_speech: float = 0.2  # seconds of speech that open an utterance
    hangover: float = 0.8  # seconds of silence that close it
    vad_mode: int = 2  # webrtcvad aggressiveness 0-3


@dataclass(frozen=True)
class SmoothingConfig:
    method: str = "mean"
    n: int = 3
    k: int = 2


@dataclass(frozen=True)
class GpioConfig:
    pin: int | str
    trigger: str = "spoof"  # which decision drives the line
    active_high: bool = True
    hold: float = 5.0  # seconds the line stays active after a decision


@dataclass(frozen=True)
class ClipsConfig:
    dir: Path
    max_mb: float = 50.0


@dataclass(frozen=True)
class ActionsConfig:
    on_spoof: str | None = None
    on_bonafide: str | None = None
    hook_timeout: float = 5.0
    gpio: GpioConfig | None = None
    clips: ClipsConfig | None = None


@dataclass(frozen=True)
class CalibrationConfig:
    target_frr: float = 0.05
    seconds: float = 30.0


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    # The enrolled owner whose voice alone may pass (edge-detect enrol); None: any bona fide
    # speech passes. owner_store None: the default store (edge_runtime.owners).
    owner: str | None = None
    owner_store: Path | None = None
    source: Path | None = None  # the file it was loaded from


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Fields:
    """Reads one TOML table, checking each field; remembers which keys were consumed."""

    def __init__(self, table: Any, where: str, base: Path) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table, got {_describe(table)}")
        self.table = table
        self.where = where
        self.base = base
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str) -> Any:
        self.used.add(key)
        return self.table.get(key)

    def _fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self._name(key)}: {reason}")

    def number(self, key: str, default: float | None, *, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"expected a number, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise self._fail(key, f"must be finite, got {value}")
        if low is not None and (value <= low if low_open else value < low):
            raise self._fail(key, f"must be {'>' if low_open else '>='} {low:g}, got {value:g}")
        if high is not None and value > high:
            raise self._fail(key, f"must be <= {high:g}, got {value:g}")
        return value

    def integer(self, key: str, default: int | None, *, low: int | None = None,
                high: int | None = None) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"expected an integer, got {_describe(value)}")
        if low is not None and value < low:
            raise self._fail(key, f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise self._fail(key, f"must be <= {high}, got {value}")
        return value

    def string(self, key: str, default: str | None, *,
               choices: tuple[str, ...] | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(key, f"expected a string, got {_describe(value)}")
        if choices is not None and value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}; got {value!r}")
        if choices is None and not value.strip():
            raise self._fail(key, "must not be empty")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, f"expected true or false, got {_describe(value)}")
        return value

    def path(self, key: str) -> Path | None:
        value = self.string(key, None)
        if value is None:
            return None
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.base / path

    def int_or_string(self, key: str, *, low: int = 0) -> int | str | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self._fail(key, f"expected an index or a name, got {_describe(value)}")
        if isinstance(value, int) and value < low:
            raise self._fail(key, f"must be >= {low}, got {value}")
        if isinstance(value, str) and not value.strip():
            raise self._fail(key, "must not be empty")
        return value

    def sub(self, key: str) -> _Fields | None:
        value = self._get(key)
        if value is None:
            return None
        return _Fields(value, self._name(key), self.base)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(f"{self._name(unknown[0])}: unknown field")


def _audio(f: _Fields | None) -> AudioConfig:
    if f is None:
        return AudioConfig()
    d = AudioConfig()
    cfg = AudioConfig(
        device=f.int_or_string("device"),
        rate=f.integer("rate", d.rate, low=CAPTURE_RATE_RANGE[0], high=CAPTURE_RATE_RANGE[1]),
        channels=f.integer("channels", d.channels, low=CHANNELS_RANGE[0],
                           high=CHANNELS_RANGE[1]),
        chunk=f.integer("chunk", d.chunk, low=CHUNK_RANGE[0], high=CHUNK_RANGE[1]),
        retries=f.integer("retries", d.retries, low=0, high=1000),
        retry_backoff=f.number("retry_backoff", d.retry_backoff, low=0.0, high=60.0),
        stall_timeout=f.number("stall_timeout", d.stall_timeout, low=0.0, high=600.0,
                               low_open=True),
    )
    f.done()
    return cfg


def _model(f: _Fields | None) -> ModelConfig:
    if f is None:
        return ModelConfig()
    cfg = ModelConfig(
        path=f.path("path"),
        threads=f.integer("threads", None, low=THREADS_RANGE[0], high=THREADS_RANGE[1]),
        threshold=f.number("threshold", None, low=0.0, high=1.0),
        speech_model=f.path("speech_model"),
        speech_threshold=f.number("speech_threshold", None, low=0.0, high=1.0),
        speaker_model=f.path("speaker_model"),
    )
    f.done()
    return cfg


def _stream(f: _Fields | None) -> StreamConfig:
    if f is None:
        return StreamConfig()
    d = StreamConfig()
    cfg = StreamConfig(
        hop=f.number("hop", d.hop, low=HOP_RANGE[0], high=HOP_RANGE[1]),
        max_utterance=f.number("max_utterance", d.max_utterance, low=1.0, high=600.0),
    )
    f.done()
    return cfg


def _gate(f: _Fields | None) -> GateConfig:
    if f is None:
        return GateConfig()
    d = GateConfig()
    cfg = GateConfig(
        kind=f.string("kind", d.kind, choices=GATE_KINDS),
        threshold_db=f.number("threshold_db", d.threshold_db, low=-120.0, high=0.0),
        margin_db=f.number("margin_db", d.margin_db, low=0.0, high=60.0),
        min_speech=f.number("min_speech", d.min_speech, low=0.01, high=5.0),
        hangover=f.number("hangover", d.hangover, low=0.01, high=10.0),
        vad_mode=f.integer("vad_mode", d.vad_mode, low=0, high=3),
    )
    f.done()
    return cfg


def _smoothing(f: _Fields | None) -> SmoothingConfig:
    if f is None:
        return SmoothingConfig()
    d = SmoothingConfig()
    cfg = SmoothingConfig(
        method=f.string("method", d.method, choices=SMOOTHING_METHODS),
        n=f.integer("n", d.n, low=1, high=100),
        k=f.integer("k", d.k, low=1, high=100),
    )
    if cfg.k > cfg.n:
        raise ConfigError(f"{f._name('k')}: must be <= smoothing.n ({cfg.n}), got {cfg.k}")
    f.done()
    return cfg


def _actions(f: _Fields | None) -> ActionsConfig:
    if f is None:
        return ActionsConfig()
    d = ActionsConfig()
    gpio = None
    g = f.sub("gpio")
    if g is not None:
        pin = g.int_or_string("pin")
        if pin is None:
            raise ConfigError(f"{g.where}.pin: required when [actions.gpio] is present")
        gpio = GpioConfig(
            pin=pin,
            trigger=g.string("trigger", "spoof", choices=GPIO_TRIGGERS),
            active_high=g.boolean("active_high", True),
            hold=g.number("hold", 5.0, low=0.0, high=3600.0, low_open=True),
        )
        g.done()
    clips = None
    c = f.sub("clips")
    if c is not None:
        folder = c.path("dir")
        if folder is None:
            raise ConfigError(f"{c.where}.dir: required when [actions.clips] is present")
        clips = ClipsConfig(dir=folder, max_mb=c.number("max_mb", 50.0, low=0.0, high=1e6,
                                                         low_open=True))
        c.done()
    cfg = ActionsConfig(
        on_spoof=f.string("on_spoof", None),
        on_bonafide=f.string("on_bonafide", None),
        hook_timeout=f.number("hook_timeout", d.hook_timeout, low=0.0, high=3600.0,
                              low_open=True),
        gpio=gpio,
        clips=clips,
    )
    f.done()
    return cfg


def _calibration(f: _Fields | None) -> CalibrationConfig:
    if f is None:
        return CalibrationConfig()
    d = CalibrationConfig()
    target = f.number("target_frr", d.target_frr, low=0.0, high=1.0)
    if target >= 1.0:
        raise ConfigError(f"{f._name('target_frr')}: must be < 1, got {target:g}")
    cfg = CalibrationConfig(
        target_frr=target,
        seconds=f.number("seconds", d.seconds, low=CALIBRATION_SECONDS_RANGE[0],
                         high=CALIBRATION_SECONDS_RANGE[1]),
    )
    f.done()
    return cfg


def _owner_name(root: _Fields) -> str | None:
    from edge_runtime.errors import OwnerError
    from edge_runtime.owners import check_name

    name = root.string("owner", None)
    if name is not None:
        try:
            check_name(name)
        except OwnerError as error:
            raise ConfigError(f"owner: {error}") from None
    return name


def parse_profile(raw: dict[str, Any], base: Path, name: str = "default",
                  source: Path | None = None) -> Profile:
    """Builds a Profile from parsed TOML; raises ConfigError naming the first bad field."""
    root = _Fields(raw, "", base)
    title = root.string("name", name)
    profile = Profile(
        name=title,
        audio=_audio(root.sub("audio")),
        model=_model(root.sub("model")),
        stream=_stream(root.sub("stream")),
        gate=_gate(root.sub("gate")),
        smoothing=_smoothing(root.sub("smoothing")),
        actions=_actions(root.sub("actions")),
        calibration=_calibration(root.sub("calibration")),
        owner=_owner_name(root),
        owner_store=root.path("owner_store"),
        source=source,
    )
    root.done()
    return profile


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Reads and validates a profile; every problem is a one-line ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such profile") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a profile") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: unreadable ({error})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    try:
        return parse_profile(raw, path.resolve().parent, name=path.stem, source=path)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def with_overrides(profile: Profile, **sections: dict[str, Any]) -> Profile:
    """Returns a copy with flag values replacing profile fields (None values are ignored)."""
    changes: dict[str, Any] = {}
    for section, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            continue
        current = getattr(profile, section)
        known = {f.name for f in fields(current)}
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"unknown {section} fields: {sorted(unknown)}")
        changes[section] = replace(current, **given)
    return replace(profile, **changes)


_SECTION = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_THRESHOLD = re.compile(r"^(\s*threshold\s*=\s*)([^#\n]*?)(\s*(#.*)?)$")


def set_threshold_text(text: str, threshold: float, comment: str | None = None) -> str:
    """Returns the profile text with ``[model] threshold`` set, every other line untouched.

    Only that one line changes (or is added under ``[model]``, or a ``[model]`` table is
    appended), so comments and layout of a hand-written profile survive calibration.
    """
    # repr is the shortest text that reads back as the same float: rounding could move the
    # threshold below a bona fide score and raise the false-rejection rate just calibrated.
    value = repr(float(threshold))
    note = f"  # {comment}" if comment else ""
    lines = text.splitlines(keepends=True)
    section = None
    model_header = None
    for index, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip()
            if section == "model":
                model_header = index
            continue
        if section == "model":
            found = _THRESHOLD.match(line.rstrip("\r\n"))
            if found:
                ending = line[len(line.rstrip("\r\n")):] or "\n"
                lines[index] = f"{found.group(1)}{value}{note}{ending}"
                return "".join(lines)
    if model_header is not None:
        lines.insert(model_header + 1, f"threshold = {value}{note}\n")
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(f"\n[model]\nthreshold = {value}{note}\n")
    return "".join(lines)


def write_threshold(path: str | os.PathLike[str], threshold: float,
                    comment: str | None = None) -> Profile:
    """Rewrites the profile's threshold atomically; the new text is validated before it lands."""
    path = Path(path)
    load_profile(path)  # refuse to touch a profile that is already broken
    text = set_threshold_text(path.read_text(encoding="utf-8"), threshold, comment)
    try:
        updated = parse_profile(tomllib.loads(text), path.resolve().parent, name=path.stem,
                                source=path)
    except (tomllib.TOMLDecodeError, ConfigError) as error:
        raise ConfigError(f"{path}: could not update the threshold ({error})") from None
    if updated.model.threshold != float(threshold):
        raise ConfigError(f"{path}: could not update the threshold line")
    write_text_atomically(path, text, durable=True)
    return updated
