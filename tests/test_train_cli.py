"""`edge-train calibrate`, `card` and `export`'s input checks (no TensorFlow needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from host_training.cli import main
from tests.conftest import SAMPLES


def _copy_model(shipped: Path, folder: Path) -> Path:
    target = folder / shipped.name
    shutil.copy(shipped, target)
    shutil.copy(shipped.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_calibrate_writes_threshold_that_meets_target(tmp_path: Path,
                                                      shipped_model_path: Path) -> None:
    model = _copy_model(shipped_model_path, tmp_path)
    bona = tmp_path / "bona"
    bona.mkdir()
    for sample in SAMPLES.glob("*.flac"):
        shutil.copy(sample, bona / sample.name)
    result = CliRunner().invoke(main, ["calibrate", "--bonafide", str(bona), "--target-frr",
                                       "0.0", "--model", str(model), "--write-card"])
    assert result.exit_code == 0, result.output
    card = json.loads(model.with_suffix(".json").read_text())
    assert "edge-train calibrate" in card["threshold_source"]
    # At a 0 % target every one of these clips must now pass as bona fide.
    from edge_runtime.clip import ClipScorer
    from edge_runtime.model import SpoofModel

    scorer = ClipScorer(SpoofModel(model))
    assert all(scorer.score_file(p).label == "bonafide" for p in bona.glob("*.flac"))


def test_calibrate_refuses_empty_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["calibrate", "--bonafide", str(tmp_path)])
    assert result.exit_code == 2
    assert "no audio files" in result.output


def test_card_renders_figures_from_json(tmp_path: Path, shipped_model_path: Path) -> None:
    model = _copy_model(shipped_model_path, tmp_path)
    out = tmp_path / "README.md"
    result = CliRunner().invoke(main, ["card", "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["sha256"] in text
    assert "## Limitations" in text


@pytest.mark.parametrize("share", ["0.5", "-0.1"])
def test_export_refuses_an_outlier_share_out_of_range(tmp_path: Path, share: str) -> None:
    result = CliRunner().invoke(main, ["export", "--run", str(tmp_path),
                                       "--range-outlier-share", share])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"edge-train: error: outlier share {float(share)}: must be in [0, 0.5)"]
