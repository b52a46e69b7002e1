"""The lent-GPU round's packing and collecting (host_training.gpu_round)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from host_training.gpu_round import collect_runs, pack_parts, run_command


def test_parts_stay_under_the_limit_and_unpack_into_the_corpus_layout(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for sub, count in (("protocols", 1), ("train/flac", 6), ("dev/flac", 2), ("eval/flac", 2)):
        (root / sub).mkdir(parents=True)
        for i in range(count):
            (root / sub / f"{i}.bin").write_bytes(bytes([i]) * 3000)
    parts = pack_parts([f"{root}:mine:train,dev"], tmp_path / "up", part_bytes=8000)
    assert len(parts) > 1
    unpacked = tmp_path / "cache"
    for part in parts:
        assert part.stat().st_size <= 8000 + 3000 + 2 * tarfile.BLOCKSIZE + tarfile.RECORDSIZE
        with tarfile.open(part) as tar:
            tar.extractall(unpacked, filter="data")
    got = sorted(str(p.relative_to(unpacked / "mine")) for p in unpacked.rglob("*.bin"))
    assert got == sorted(str(p.relative_to(root)) for p in root.rglob("*.bin")
                         if not p.parts[-3] == "eval")
    assert (unpacked / "mine" / "train" / "flac" / "5.bin").read_bytes() == bytes([5]) * 3000


def test_collected_runs_come_back_as_loadable_models_with_their_records(tmp_path: Path) -> None:
    from host_training.config import OptimConfig
    from host_training.model import ModelConfig, build_model, load_detector
    from host_training.train import make_optimizer

    runs = tmp_path / "runs"
    model = build_model((40, 16), ModelConfig(stem_channels=2, blocks=1, dense_units=4))
    model.compile(optimizer=make_optimizer(OptimConfig()), loss="binary_crossentropy")
    features = np.random.default_rng(0).normal(size=(3, 40, 16, 1)).astype(np.float32)
    model.fit(features, np.array([0.0, 1.0, 1.0]), verbose=0)  # optimizer state to leave out
    for name in ("a-s0", "b-s1"):
        (runs / name).mkdir(parents=True)
        model.save(runs / name / "best.keras")
        (runs / name / "history.json").write_text(json.dumps([{"epoch": 1}]))
        (runs / f"{name}.log").write_text("epoch   1/1\n")
    (runs / "unfinished-s2").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    assert collect_runs(runs, out) == ["a-s0", "b-s1"]
    assert [p.name for p in out.iterdir()] == ["runs-0.tar"]
    with tarfile.open(out / "runs-0.tar") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    back = tmp_path / "back" / "b-s1"
    assert (back / "best.keras").stat().st_size < (runs / "b-s1" / "best.keras").stat().st_size
    np.testing.assert_allclose(load_detector(back / "best.keras").predict(features, verbose=0),
                               model.predict(features, verbose=0), rtol=1e-6)
    assert (back / "train.log").read_text() == "epoch   1/1\n"
    assert json.loads((back / "history.json").read_text()) == [{"epoch": 1}]


def test_a_run_writes_to_its_config_and_seed() -> None:
    command = run_command(Path("gpu/v2.5-sam.toml"), 3, workers=2)
    assert command[command.index("--out") + 1] == str(Path("runs/v2.5-sam-s3"))
    assert command[command.index("--seed") + 1] == "3"
    assert command[command.index("--workers") + 1] == "2"


def test_the_round_table_pairs_each_arm_with_the_baseline_of_the_same_seed(
        tmp_path: Path) -> None:
    import click
    import pytest

    from host_training.gpu_round import round_table, run_name

    eers = {("base", 0): 0.30, ("base", 1): 0.26, ("base", 2): 0.28,
            ("v2.5-sam", 0): 0.33, ("v2.5-sam", 1): 0.30}
    for (stem, seed), eer in eers.items():
        run = tmp_path / run_name(Path(f"gpu/{stem}.toml"), seed)
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"dev_eer": eer, "best_epoch": 3}))
    (tmp_path / run_name(Path("v2.5-sam.toml"), 2)).mkdir()  # still training: no metrics
    (tmp_path / "base-s0.log").write_text("")  # logs and other files are not runs
    lines = round_table(tmp_path, "base")
    assert lines[2] == "| base | 0,1,2 | 30.0 / 26.0 / 28.0 | 28.0 ± 2.0 | - |"
    # seed 0: +3, seed 1: +4 points against base's same seeds
    assert lines[3] == "| v2.5-sam | 0,1 | 33.0 / 30.0 | 31.5 ± 2.1 | +3.50 over 2 |"
    assert "1 runs without metrics.json" in lines[-1]
    with pytest.raises(click.ClickException, match="no finished run of 'default'"):
        round_table(tmp_path, "default")


def test_wait_reports_a_stopped_run_as_failed_without_waiting_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from host_training.gpu_round import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "done-s0").mkdir(parents=True)
    (tmp_path / "runs" / "done-s0" / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "done-s0.log").write_text("epoch   1/1  10 clips  loss 0.5\n")
    (tmp_path / "runs" / "dead-s1.log").write_text(
        "epoch   1/3  10 clips  loss 8.3\nedge-train: error: epoch 1: the model gives all 6 "
        "dev clips one score (1): ...\n")
    (tmp_path / "runs" / "live-s2.log").write_text("epoch   1/3  10 clips  loss 0.6\n")
    result = CliRunner().invoke(main, ["wait", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "dead-s1: failed, 1 epochs; epoch   1/3  10 clips  loss 8.3",
        "  edge-train: error: epoch 1: the model gives all 6 dev clips one score (1): ...",
        "done-s0: done, 1 epochs; epoch   1/1  10 clips  loss 0.5",
        "live-s2: running, 1 epochs; epoch   1/3  10 clips  loss 0.6"]
