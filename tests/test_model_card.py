"""The host's one model-card writer: atomic, checked by the board's parser, merging metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_runtime.errors import ModelError
from edge_runtime.model import SpoofModel, card_path_for
from host_training.model_card import read_card, record_metrics, update_card, write_card


@pytest.fixture
def model_copy(tmp_path: Path, shipped_model_path: Path) -> Path:
    target = tmp_path / shipped_model_path.name
    shutil.copy(shipped_model_path, target)
    shutil.copy(card_path_for(shipped_model_path), card_path_for(target))
    return target


def test_update_card_changes_only_the_named_fields(model_copy: Path) -> None:
    before = read_card(model_copy)
    update_card(model_copy, threshold=0.25, threshold_source="test")
    after = read_card(model_copy)
    assert after["threshold"] == 0.25 and after["threshold_source"] == "test"
    assert {k: v for k, v in after.items() if not k.startswith("threshold")} == {
        k: v for k, v in before.items() if not k.startswith("threshold")}
    assert SpoofModel(model_copy).threshold == 0.25


def test_a_card_the_board_would_refuse_is_not_written(model_copy: Path) -> None:
    card_text = card_path_for(model_copy).read_text()
    with pytest.raises(ModelError, match="threshold"):
        update_card(model_copy, threshold=1.5)
    bad = read_card(model_copy) | {"frontend": "nonsense"}
    with pytest.raises(ModelError, match=str(card_path_for(model_copy))):
        write_card(model_copy, bad)
    assert card_path_for(model_copy).read_text() == card_text
    assert sorted(p.name for p in model_copy.parent.iterdir()) == sorted(
        [model_copy.name, card_path_for(model_copy).name])


def test_metrics_are_merged_per_split_and_per_condition(model_copy: Path) -> None:
    record_metrics(model_copy, {"eval": {"robustness": {"noise": 1}}, "new": {"eer": 0.5}})
    record_metrics(model_copy, {"eval": {"robustness": {"room": 2, "noise": 3}}})
    metrics = read_card(model_copy)["metrics"]
    assert metrics["eval"]["robustness"]["room"] == 2
    assert metrics["eval"]["robustness"]["noise"] == 3  # measured again: the new figure
    assert "telephone" in metrics["eval"]["robustness"]  # measured before: kept
    assert "eer" in metrics["eval"]  # the clean figures are kept
    assert metrics["new"] == {"eer": 0.5}


def test_the_human_card_says_how_int8_ranges_were_set(model_copy: Path) -> None:
    from host_training.model_card import render

    card = read_card(model_copy)
    card["quantization"]["calibration"] = {"clips": 300, "windows": 596,
                                           "range_outlier_share": 3e-4}
    assert ("596 windows of 300 training clips; ranges cut where 0.03 % of each activation's "
            "values lie outside at each end") in render(card)
    card["quantization"]["calibration"]["range_outlier_share"] = 0.0
    assert "ranges min / max of the calibration values" in render(card)
    del card["quantization"]["calibration"]  # cards exported before the cut
    assert "int8 calibration" not in render(card)
