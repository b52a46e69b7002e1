"""Defaults and ranges of the live settings that a profile field (``edge_runtime.config``)
shares with its command-line flag and with the bench, stated once. Ranges are inclusive
(low, high). A module of constants only, so the command line imports it for free."""

from __future__ import annotations

DEFAULT_HOP_SECONDS = 0.5  # seconds between scored windows of live detection
HOP_RANGE = (0.01, 4.0)  # at most one window length: no audio goes unscored
CAPTURE_RATE_RANGE = (8000, 384000)  # Hz, microphone or stdin PCM
CHANNELS_RANGE = (1, 32)
CHUNK_RANGE = (64, 65536)  # frames per read
THREADS_RANGE = (1, 64)
CALIBRATION_SECONDS_RANGE = (1.0, 3600.0)
