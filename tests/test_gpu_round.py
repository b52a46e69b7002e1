"""The lent-GPU round's packing and collecting (host_training.gpu_round)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

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
