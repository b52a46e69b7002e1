"""One exception type per kind of user-facing failure; the CLI maps them to exit codes."""

from __future__ import annotations

EXIT_BONAFIDE = 0
EXIT_SPOOF = 1
EXIT_INPUT_ERROR = 2
EXIT_RUNTIME_FAULT = 3


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
