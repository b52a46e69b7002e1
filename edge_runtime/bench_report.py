"""The bench report format (``edge-detect/bench-report`` version 1): its JSON Schema, and
reading reports back for `bench compare` and the benchmarks/ suite.

The schema is checked with ``jsonschema`` (host side: the ``dev`` and ``train`` extras); the
board only writes reports, it never needs to check one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_runtime.errors import ConfigError

SCHEMA = "edge-detect/bench-report"
SCHEMA_VERSION = 1

_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}


def _nullable(spec: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [spec, {"type": "null"}]}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    """An object that must hold these keys; more may be added within a schema version."""
    return {"type": "object", "required": sorted(properties), "properties": properties}


_STATS = _object(count=_INTEGER, min=_NUMBER, p50=_NUMBER, p95=_NUMBER, p99=_NUMBER,
                 mean=_NUMBER, max=_NUMBER)

# Version 1: keys may be added within a version; removing or retyping one needs
# SCHEMA_VERSION + 1.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edge-detect bench report, version 1",
    **_object(
        schema={"const": SCHEMA}, schema_version={"const": SCHEMA_VERSION},
        edge_detect_version=_STRING, created_utc=_STRING, note=_nullable(_STRING),
        device=_object(
            hostname=_STRING, arch=_STRING, cpu_model=_nullable(_STRING),
            cpu_mhz=_nullable(_NUMBER), simd={"type": "array"}, cores=_nullable(_INTEGER),
            usable_cores=_nullable(_INTEGER), board=_nullable(_STRING), os=_STRING,
            kernel=_STRING, python=_STRING, numpy=_STRING, interpreter=_STRING,
            load_average={"type": "array"}, env={"type": "object"}),
        settings=_object(warmup=_INTEGER, repeat=_INTEGER, cold_runs=_INTEGER,
                         stream_seconds=_NUMBER, hop_seconds=_NUMBER,
                         threads=_nullable(_INTEGER)),
        model=_object(path=_STRING, sha256=_STRING, size_bytes=_INTEGER,
                      input_shape={"type": "array"}, input_dtype=_STRING,
                      constant_bytes=_INTEGER, activation_bytes_sum=_INTEGER,
                      peak_live_activation_bytes=_INTEGER, ops=_INTEGER),
        cold_start=_nullable(_object(
            first_score_s={"type": "object"}, breakdown_p50_s={"type": "object"},
            cli_classify_s={"type": "object"}, child_peak_rss_bytes=_INTEGER,
            child_scipy_imported=_BOOLEAN)),
        latency_ms=_object(frontend=_STATS, invoke=_STATS, model=_STATS, end_to_end=_STATS),
        stream=_object(audio_seconds=_NUMBER, hop_seconds=_NUMBER, hops=_INTEGER,
                       windows_scored=_INTEGER, wall_seconds=_NUMBER, rtf=_NUMBER,
                       cpu_seconds=_NUMBER, rtf_cpu=_NUMBER, per_hop_ms=_STATS),
        memory=_object(peak_rss_bytes=_INTEGER, rss_after_imports_bytes=_nullable(_INTEGER),
                       scipy_imported=_BOOLEAN, tensorflow_imported=_BOOLEAN),
        compute=_object(macs_per_window=_INTEGER, macs_by_op={"type": "object"},
                        achieved_macs_per_s=_nullable(_NUMBER),
                        macs_per_cycle_per_thread=_nullable(_NUMBER)),
    ),
}


class NotABenchReport(ConfigError):
    """Valid JSON that is not a bench report of this version (a soak or suite summary...)."""


def validate_report(report: Any) -> list[str]:
    """Problems that make ``report`` not a version-1 bench report (empty when valid), each as
    ``report.key.key: what is wrong``."""
    try:
        import jsonschema
    except ImportError:
        raise ConfigError("checking bench reports needs jsonschema "
                          "(pip install 'edge-detect[dev]' or jsonschema)") from None
    # Another kind of file, or another version, is said as such before any detail.
    if not isinstance(report, dict):
        return ["report: expected a JSON object"]
    if report.get("schema") != SCHEMA:
        return [f"schema: expected {SCHEMA!r}, got {report.get('schema')!r}"]
    if report.get("schema_version") != SCHEMA_VERSION:
        return [f"schema_version: this edge-detect reads version {SCHEMA_VERSION}, "
                f"got {report.get('schema_version')!r}"]
    validator = jsonschema.Draft202012Validator(REPORT_SCHEMA)
    problems = []
    for error in sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path)):
        where = ".".join(["report", *map(str, error.absolute_path)])
        problems.append(f"{where}: {error.message}")
    return problems


def load_report(path: str | Path) -> dict[str, Any]:
    """A bench report from a file: either a report or a suite file holding one under "edge".

    Raises ConfigError with one line when the file is missing or not JSON, NotABenchReport
    when it is JSON of another kind.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a JSON bench report ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("edge"), dict):
        data = data["edge"]
    problems = validate_report(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NotABenchReport(f"{path}: not a bench report: {problems[0]}{more}")
    return data
