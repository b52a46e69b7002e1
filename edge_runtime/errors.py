"""One exception type per kind of user-facing failure, and every exit code, stated once here;
the CLIs map the exceptions to their codes. 0 means "bona fide speech" (of the owner, where an
owner is asked for) and nothing else: a lock may open on 0 alone.
"""

from __future__ import annotations

EXIT_BONAFIDE = 0  # every input was bona fide speech
EXIT_SPOOF = 1  # spoofed speech
EXIT_INPUT_ERROR = 2  # usage or input error
EXIT_RUNTIME_FAULT = 3  # device or model fault, or a fault nobody foresaw
EXIT_NO_SPEECH = 4  # no speech: silence, tones, music, noise (the speech gate said so)
EXIT_NOT_OWNER = 5  # bona fide speech, but not the enrolled owner's voice (speaker verification)
# As a shell reports a process killed by the signal (128 + its number).
EXIT_INTERRUPTED = 130  # SIGINT, Ctrl-C
EXIT_OUTPUT_CLOSED = 141  # SIGPIPE: the reader of stdout went away
EXIT_TERMINATED = 143  # SIGTERM


class EdgeDetectError(Exception):
    """Base class: the message is one line a person can act on."""

    exit_code = EXIT_RUNTIME_FAULT


class AudioError(EdgeDetectError):
    """Audio that cannot be read or scored (missing, corrupt, empty, NaN...)."""

    exit_code = EXIT_INPUT_ERROR


class ConfigError(EdgeDetectError):
    """A profile or option with a wrong field, type or range."""

    exit_code = EXIT_INPUT_ERROR


class ModelError(EdgeDetectError):
    """A model file or card that is missing, corrupt or does not belong together."""

    exit_code = EXIT_RUNTIME_FAULT


class OwnerError(EdgeDetectError):
    """An owner that is not enrolled, a bad owner name, or an owner record that cannot be used."""

    exit_code = EXIT_INPUT_ERROR


class DeviceError(EdgeDetectError):
    """An audio device that is missing or failed."""

    exit_code = EXIT_RUNTIME_FAULT
