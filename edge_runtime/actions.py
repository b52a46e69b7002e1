"""What a decision does: an output line, a shell hook, a GPIO line, a saved clip, an exit code.

Hooks run one at a time on a worker thread so a slow hook does not stall listening, each
limited to ``hook_timeout`` seconds (then its whole process group is killed). A hook that
fails or hangs is logged in one line and detection goes on. Clips are written to a temporary
file and renamed, so a reader never sees half a clip, and the folder is kept under its size
bound by deleting the oldest clips first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from edge_runtime.atomic import atomic_output, remove_partial_files
from edge_runtime.errors import (
    EXIT_BONAFIDE,
    EXIT_NO_SPEECH,
    EXIT_NOT_OWNER,
    EXIT_SPOOF,
    ConfigError,
    DeviceError,
)
from edge_runtime.speech_presence import BONAFIDE, NOSPEECH, NOTOWNER, SPOOF
from edge_runtime.stream import DetectionEvent, LiveDetector
from edge_runtime.wording import counted

log = logging.getLogger("edge_runtime")

CLIP_PREFIX = "spoof-"


def format_event(event: DetectionEvent) -> str:
    """The human line for an event."""
    if event.decision is None:
        smoothed = "" if event.smoothed is None else f"  smoothed {event.smoothed:.4f}"
        return f"{event.t:8.2f}s  score {event.score:.4f}{smoothed}"
    start, end = event.utterance or (event.t, event.t)
    label = {SPOOF: "SPOOF", BONAFIDE: "bona fide", NOSPEECH: "no speech",
             NOTOWNER: "NOT THE OWNER"}[event.decision]
    speech = "" if event.speech_score is None else f"  speech {event.speech_score:.4f}"
    if event.similarity is not None:
        speech += f"  similarity {event.similarity:.4f}"
    if event.speaker_score is not None:
        speech += f"  speaker score {event.speaker_score:.2f}"
    return (f"{event.t:8.2f}s  {label}  score {event.score:.4f}{speech}  "
            f"(utterance {start:.2f}-{end:.2f} s, {counted(event.windows, 'window')})")


@dataclass(frozen=True)
class HookResult:
    command: str
    returncode: int | None  # None: killed after the timeout
    seconds: float


def run_hook(command: str, env: dict[str, str], timeout: float) -> HookResult:
    """Runs ``command`` in a shell with ``env`` added; kills its process group on timeout."""
    started = time.monotonic()
    process = subprocess.Popen(command, shell=True, env={**os.environ, **env},
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        code: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    return HookResult(command, code, time.monotonic() - started)


class HookRunner:
    """Runs decision hooks in order on one worker thread; ``close`` waits for them."""

    def __init__(self, on_spoof: str | None, on_bonafide: str | None, timeout: float) -> None:
        # No speech runs nothing: hooks act on speech decisions only.
        self.commands = {SPOOF: on_spoof, BONAFIDE: on_bonafide}
        self.timeout = timeout
        self.results: list[HookResult] = []
        self._queue: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="hooks", daemon=True)
        self._thread.start()

    def submit(self, decision: str, env: dict[str, str]) -> None:
        command = self.commands.get(decision)
        if command:
            self._queue.put((command, env))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            command, env = item
            try:
                result = run_hook(command, env, self.timeout)
            except OSError as error:
                log.warning("hook %r could not start (%s)", command, error)
                continue
            self.results.append(result)
            if result.returncode is None:
                log.warning("hook %r killed after %.1f s (hook_timeout)", command, self.timeout)
            elif result.returncode != 0:
                log.warning("hook %r failed with exit code %d", command, result.returncode)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class GpioLine:
    """A GPIO output (gpiozero) made active for ``hold`` seconds on the chosen decision.

    Uses gpiozero's configured pin factory: on a Pi the real pins, in tests MockFactory
    (``GPIOZERO_PIN_FACTORY=mock`` works too).
    """

    def __init__(self, pin: int | str, trigger: str = "spoof", active_high: bool = True,
                 hold: float = 5.0) -> None:
        try:
            from gpiozero import OutputDevice
            from gpiozero.exc import GPIOZeroError
        except ImportError:
            raise ConfigError(
                "actions.gpio needs gpiozero: pip install 'edge-detect[gpio]'"
            ) from None
        self.trigger = trigger
        self.hold = hold
        try:
            with warnings.catch_warnings():
                # gpiozero warns once per pin library it tries; the outcome is all that matters.
                warnings.simplefilter("ignore")
                self.device = OutputDevice(pin, active_high=active_high, initial_value=False)
        except (GPIOZeroError, OSError, ValueError) as error:
            hint = ("; off a board, GPIOZERO_PIN_FACTORY=mock runs without one"
                    if "GPIOZERO_PIN_FACTORY" not in os.environ else "")
            raise DeviceError(f"cannot drive GPIO pin {pin} ({error}){hint}") from None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def on_decision(self, decision: str) -> None:
        if decision != self.trigger:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()  # a new decision extends the hold
            self.device.on()
            self._timer = threading.Timer(self.hold, self._release)
            self._timer.daemon = True
            self._timer.start()

    def _release(self) -> None:
        with self._lock:
            self.device.off()
            self._timer = None

    @property
    def active(self) -> bool:
        return bool(self.device.value)

    def close(self, wait: bool = True) -> None:
        """Finishes a running hold (or cuts it short) and releases the pin."""
        timer = self._timer
        if timer is not None:
            if wait:
                timer.join()
            else:
                timer.cancel()
                self._release()
        self.device.close()


def write_wav_atomically(path: Path, samples: np.ndarray, rate: int) -> None:
    """16-bit WAV via a temporary file in the same folder and a rename."""
    import soundfile

    with atomic_output(path, durable=True) as temporary:
        soundfile.write(temporary, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16",
                        format="WAV")


class ClipSaver:
    """Saves the audio behind each spoof decision into a folder bounded to ``max_bytes``."""

    def __init__(self, folder: Path, max_bytes: int, rate: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.rate = rate
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"actions.clips.dir: cannot create {self.folder} ({error})") from None
        # Leftovers of a run killed mid-write are not clips.
        remove_partial_files(self.folder)

    def clips(self) -> list[Path]:
        """Saved clips, oldest first (names start with a sortable timestamp)."""
        return sorted(self.folder.glob(f"{CLIP_PREFIX}*.wav"))

    def save(self, samples: np.ndarray, score: float, t: float) -> Path | None:
        size = 44 + 2 * samples.shape[0]
        if size > self.max_bytes:
            log.warning("clip of %.1f s is larger than actions.clips.max_mb; not saved",
                        samples.shape[0] / self.rate)
            return None
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
        name = f"{CLIP_PREFIX}{stamp}-{now % 10**9:09d}-{score:.3f}.wav"
        path = self.folder / name
        try:
            write_wav_atomically(path, samples, self.rate)
        except OSError as error:
            log.warning("could not save clip %s (%s)", path, error)
            return None
        self._trim(keep=path)
        return path

    def _trim(self, keep: Path) -> None:
        clips = self.clips()
        sizes = {clip: clip.stat().st_size for clip in clips if clip.exists()}
        total = sum(sizes.values())
        for clip in clips:
            if total <= self.max_bytes:
                break
            if clip == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                clip.unlink()
            total -= sizes.get(clip, 0)


class Actions:
    """Everything that follows from events: output lines, hooks, GPIO, clips."""

    def __init__(self, out: TextIO, as_json: bool = False, threshold: float = 0.5,
                 hooks: HookRunner | None = None, gpio: GpioLine | None = None,
                 clips: ClipSaver | None = None, show_windows: bool = True) -> None:
        self.out = out
        self.as_json = as_json
        self.threshold = threshold
        self.hooks = hooks
        self.gpio = gpio
        self.clips = clips
        self.show_windows = show_windows
        self.decisions: list[str] = []

    def handle(self, event: DetectionEvent) -> None:
        clip_path = None
        if event.decision == SPOOF and self.clips is not None and event.clip is not None:
            clip_path = self.clips.save(event.clip, event.score or 0.0, event.t)
        if event.decision is not None or self.show_windows:
            if self.as_json:
                data = event.to_json()
                if event.decision is not None and clip_path is not None:
                    data["clip"] = str(clip_path)
                self.out.write(json.dumps(data) + "\n")
            else:
                self.out.write(format_event(event) + "\n")
            self.out.flush()
        if event.decision is None:
            return
        self.decisions.append(event.decision)
        if self.gpio is not None:
            self.gpio.on_decision(event.decision)
        if self.hooks is not None:
            env = {
                "EDGE_DETECT_DECISION": event.decision,
                "EDGE_DETECT_SCORE": f"{event.score:.6f}",
                "EDGE_DETECT_THRESHOLD": f"{self.threshold:.6f}",
                "EDGE_DETECT_TIME": f"{event.t:.3f}",
                "EDGE_DETECT_CLIP": str(clip_path) if clip_path else "",
                "EDGE_DETECT_SPEECH": ("" if event.speech_score is None
                                       else f"{event.speech_score:.6f}"),
                "EDGE_DETECT_SIMILARITY": ("" if event.similarity is None
                                           else f"{event.similarity:.6f}"),
                "EDGE_DETECT_SPEAKER_SCORE": ("" if event.speaker_score is None
                                              else f"{event.speaker_score:.6f}"),
            }
            self.hooks.submit(event.decision, env)

    def close(self, wait: bool = True) -> None:
        if self.hooks is not None:
            self.hooks.close()
        if self.gpio is not None:
            self.gpio.close(wait=wait)


def run_live(chunks: Iterable[np.ndarray], detector: LiveDetector, actions: Actions,
             once: bool = False) -> int:
    """Feeds audio through the detector into the actions; returns the exit code.

    ``once``: stop at the first decision: 0 bona fide, 1 spoof, 4 no speech, 5 not the owner
    (with an owner); input that ends before any utterance was decided is "no speech" (4), never
    "bona fide". Without ``once``, the input's end gives ``exit_code_for`` all decisions.
    Device and model faults propagate as DeviceError / ModelError (exit 3).
    """

    def deliver(events: Iterable[DetectionEvent]) -> str | None:
        for event in events:
            actions.handle(event)
            if once and event.decision is not None:
                return event.decision
        return None

    decided = None
    for chunk in chunks:
        decided = deliver(detector.push(chunk))
        if decided is not None:
            break
    else:
        decided = deliver(detector.flush())
    if once:
        if decided is None:
            log.warning("the input ended before any utterance was heard: no speech")
        return exit_code_for([decided] if decided is not None else [])
    return exit_code_for(actions.decisions)


def exit_code_for(decisions: list[str]) -> int:
    """1 if any decision was spoof, else 0 if any was bona fide (the owner's, with an owner),
    else 5 if any was someone else's bona fide speech, else 4 (no speech)."""
    if SPOOF in decisions:
        return EXIT_SPOOF
    if BONAFIDE in decisions:
        return EXIT_BONAFIDE
    if NOTOWNER in decisions:
        return EXIT_NOT_OWNER
    return EXIT_NO_SPEECH


__all__ = [
    "Actions",
    "ClipSaver",
    "GpioLine",
    "HookRunner",
    "exit_code_for",
    "format_event",
    "run_hook",
    "run_live",
    "write_wav_atomically",
]
