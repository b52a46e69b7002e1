"""`edge-train seeds`: mean and spread over seeds of evaluate results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from host_training.seeds import summarize_seeds


def _result(eer: float, attack_eer: float) -> dict:
    return {"eval": {"eer": eer, "min_dcf": 0.5, "bonafide_rejected": 0.1,
                     "per_attack": {"tts": {"eer": attack_eer, "files": 3}}}}


def test_summary_is_mean_and_range_over_seeds() -> None:
    summary = summarize_seeds([_result(0.2, 0.1), _result(0.3, 0.3), _result(0.1, 0.2)])
    stats = summary["eval"]["eer"]
    assert stats["mean"] == pytest.approx(0.2)
    assert (stats["min"], stats["max"]) == (0.1, 0.3)
    assert stats["std"] == pytest.approx(0.1)
    assert summary["eval"]["per_attack_eer"]["tts"]["mean"] == pytest.approx(0.2)
    assert summary["eval"]["seeds"] == 3


def test_cli_prints_table_and_refuses_foreign_json(tmp_path: Path) -> None:
    from host_training.cli import main

    paths = []
    for seed, eer in enumerate((0.2, 0.4)):
        path = tmp_path / f"s{seed}.json"
        path.write_text(json.dumps(_result(eer, eer)))
        paths.append(str(path))
    out = CliRunner().invoke(main, ["seeds", *paths])
    assert out.exit_code == 0, out.output
    assert "30.0 ± 14.1 (20.0-40.0)" in out.output
    foreign = tmp_path / "bench.json"
    foreign.write_text(json.dumps({"eval": {"latency": 1}}))
    out = CliRunner().invoke(main, ["seeds", str(foreign)])
    assert out.exit_code == 2
    assert "not an `edge-train evaluate --json` result" in out.output
