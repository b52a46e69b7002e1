"""One exception type per kind of user-facing failure; the CLI maps them to exit codes.

The exit codes of every command are defined here and only here. 0 means "bona fide speech"
and nothing else: a lock may open on 0 alone.
"""

from __future__ import annotations

EXIT_BONAFIDE = 0  # every input was bona fide speech
EXIT_SPOOF = 1  # spoofed speech
EXIT_INPUT_ERROR = 2  # usage or input error
EXIT_RUNTIME_FAULT = 3  # runtime fault (device, model)
EXIT_NO_SPEECH = 4  # no speech: silence, tones, music, noise (the speech gate said so)


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


class DeviceError(EdgeDetectError):
    """An audio device that is missing or failed."""

    exit_code = EXIT_RUNTIME_FAULT
