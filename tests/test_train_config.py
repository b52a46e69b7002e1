"""Training configs: a config may start from a base, and a value of the wrong type is refused
where it is read, not carried into a run as truthy or coerced."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from host_training.config import load_config
from tests.conftest import REPO

CONFIGS = sorted((REPO / "host_training" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    load_config(path)


def test_a_config_overrides_its_base_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        '[model]\nactivation = "relu"\nblocks = 4\n[training]\nepochs = 7\n')
    (tmp_path / "child.toml").write_text(
        'base = "base.toml"\n[model]\nactivation = "hard_swish"\n')
    config = load_config(tmp_path / "child.toml")
    assert config.model.activation == "hard_swish"
    assert config.model.blocks == 4
    assert config.training.epochs == 7


def test_bases_chain_and_a_cycle_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[training]\nepochs = 3\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[training]\nseed = 5\n')
    (tmp_path / "c.toml").write_text('base = "b.toml"\n[training]\npatience = 2\n')
    training = load_config(tmp_path / "c.toml").training
    assert (training.epochs, training.seed, training.patience) == (3, 5, 2)
    (tmp_path / "x.toml").write_text('base = "y.toml"\n')
    (tmp_path / "y.toml").write_text('base = "x.toml"\n')
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "x.toml")


@pytest.mark.parametrize("section, key, value", [
    ("data", "speaker_balance", '"false"'),  # a string would be truthy
    ("training", "epochs", "2.5"),
    ("training", "epochs", "true"),
    ("training", "learning_rate", '"1e-3"'),
    ("model", "activation", "1"),
    ("data", "train_roots", '"cache/x"'),
])
def test_a_value_of_the_wrong_type_is_refused_with_its_key(
        tmp_path: Path, section: str, key: str, value: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ValueError, match=f"\\[{section}\\] {key}"):
        load_config(path)


def test_an_integer_is_taken_where_a_float_is_declared(tmp_path: Path) -> None:
    path = tmp_path / "lr.toml"
    path.write_text("[training]\nlearning_rate = 1\n")
    assert load_config(path).training.learning_rate == 1.0


def test_a_cosine_schedule_starts_at_the_rate_and_falls_each_epoch() -> None:
    from host_training.config import OptimConfig, epoch_learning_rate

    cosine = OptimConfig(epochs=4, learning_rate=2e-3, lr_schedule="cosine")
    rates = [epoch_learning_rate(cosine, epoch) for epoch in range(1, 5)]
    assert rates[0] == pytest.approx(2e-3)
    assert rates[2] == pytest.approx(1e-3)
    assert all(a > b > 0 for a, b in itertools.pairwise(rates))
    constant = OptimConfig(epochs=4, learning_rate=2e-3)
    assert {epoch_learning_rate(constant, epoch) for epoch in range(1, 5)} == {2e-3}


def test_an_unknown_schedule_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[training]\nlr_schedule = "linear"\n')
    with pytest.raises(ValueError, match="lr_schedule = 'linear'"):
        load_config(path)


def test_label_smoothing_must_leave_a_target() -> None:
    from host_training.config import OptimConfig

    assert OptimConfig(label_smoothing=0.1).label_smoothing == 0.1
    with pytest.raises(ValueError, match="label_smoothing"):
        OptimConfig(label_smoothing=1.0)
