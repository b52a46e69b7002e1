"""Within-source ranking (host_training.source_ranking): the pairs, the loss, the sources, a
run that trains with it and resumes, and the refusals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from host_training.config import config_from_dict
from host_training.datasets import Utterance
from tests.conftest import on_jax_cpu, two_source_corpus

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="needs the train extra (TensorFlow)")


def _bce(target: np.ndarray, p: np.ndarray, smoothing: float) -> np.ndarray:
    target = target * (1 - smoothing) + smoothing / 2
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def test_loss_adds_the_mean_ranking_loss_of_cross_class_pairs_within_a_source() -> None:
    from host_training.source_ranking import NO_SOURCE, SourceRankingLoss

    smoothing, weight = 0.1, 0.5
    # source 0: bona fide a, spoofs b and c; source 1: bona fide d, spoof e; f has no source
    y_true = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [1, 1], [1, NO_SOURCE]],
                      dtype=np.float32)
    p = np.array([0.2, 0.7, 0.1, 0.6, 0.4, 0.9], dtype=np.float32)
    got = np.asarray(SourceRankingLoss(weight, smoothing).call(y_true, p[:, None]))
    z = np.log(p / (1 - p))
    pairs = [(0, 1), (0, 2), (3, 4)]  # (bona fide, spoof) of one source
    ranking = np.mean([np.log1p(np.exp(z[i] - z[j])) for i, j in pairs])
    np.testing.assert_allclose(got, _bce(y_true[:, 0], p, smoothing) + weight * ranking,
                               rtol=1e-5)


def test_a_batch_without_a_pair_pays_the_plain_loss() -> None:
    from host_training.source_ranking import NO_SOURCE, SourceRankingLoss

    y_true = np.array([[0, 0], [0, 0], [1, 1], [1, NO_SOURCE]], dtype=np.float32)
    p = np.array([0.3, 0.4, 0.8, 0.6], dtype=np.float32)
    got = np.asarray(SourceRankingLoss(2.0, 0.0).call(y_true, p[:, None]))
    np.testing.assert_allclose(got, _bce(y_true[:, 0], p, 0.0), rtol=1e-5)


def test_sources_are_those_with_both_classes() -> None:
    from host_training.source_ranking import NO_SOURCE, ranking_sources

    clips = [Utterance(Path(f"{i}.flac"), key, system, speaker) for i, (key, system, speaker)
             in enumerate([("bonafide", "-", "VCTK_p225"), ("spoof", "tts", "VCTK_p226"),
                           ("bonafide", "-", "LJ_0"), ("spoof", "vc", "EXT_maskgct_unk"),
                           ("bonafide", "-", "EXT_maskgct_unk"), ("spoof", "tts", "SYN_1")])]
    ids, names = ranking_sources(clips)
    assert names == ["EXT_maskgct", "VCTK"]
    np.testing.assert_array_equal(ids, [1, 1, NO_SOURCE, 0, 0, NO_SOURCE])


def test_a_config_refuses_what_the_loss_cannot_go_with() -> None:
    with pytest.raises(ValueError, match="source_ranking_weight"):
        config_from_dict({"training": {"source_ranking_weight": -1.0}})
    with pytest.raises(ValueError, match="do not go together"):
        config_from_dict({"training": {"source_ranking_weight": 0.5,
                                       "source_adversary_weight": 0.5}})
    with pytest.raises(ValueError, match="head"):
        config_from_dict({"training": {"source_ranking_weight": 0.5},
                          "model": {"head": "one_class"}})
    with pytest.raises(ValueError, match="mixup"):
        config_from_dict({"training": {"source_ranking_weight": 0.5},
                          "augment": {"mixup_prob": 0.5}})


def _config(epochs: int):
    return config_from_dict({
        "frontend": {"window_seconds": 1.0, "n_bands": 40},
        "model": {"stem_channels": 4, "blocks": 1, "dense_units": 8, "dropout": 0.0},
        "training": {"epochs": epochs, "batch_size": 8, "patience": 10,
                     "label_smoothing": 0.1, "source_ranking_weight": 1.0},
    })


def test_a_run_trains_with_the_ranking_loss_and_resumes(tmp_path: Path) -> None:
    from host_training.model import load_detector
    from host_training.train import train

    corpus = two_source_corpus(tmp_path / "corpus")
    lines: list[str] = []
    straight = train(_config(2), tmp_path / "straight", tmp_path / "cache", corpus,
                     lines.append, 2)
    assert "source ranking: 1 sources with both classes (16 of 24 clips), weight 1.0" in lines
    assert load_detector(straight.run_dir / "best.keras").output_shape == (None, 1)

    # An interrupted run (config.json says 1 epoch) resumes with its loss on the same stream.
    train(_config(1), tmp_path / "resumed", tmp_path / "cache", corpus, lambda _: None, 2)
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    saved["training"]["epochs"] = 2
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(saved))
    lines.clear()
    train(_config(2), tmp_path / "resumed", tmp_path / "cache", corpus, lines.append, 2)
    assert any(line.startswith("resuming after epoch 1") for line in lines)
    runs = [json.loads((tmp_path / run / "history.json").read_text())
            for run in ("straight", "resumed")]
    for a, b in zip(*runs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["dev_eer"] == pytest.approx(b["dev_eer"])


def test_no_source_with_both_classes_is_refused_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from host_training.cli import main
    from host_training.cli_options import EXIT_INPUT_ERROR

    corpus = two_source_corpus(tmp_path / "corpus", "SYN_2")
    (tmp_path / "c.toml").write_text("[training]\nepochs = 1\nsource_ranking_weight = 1.0\n")
    result = CliRunner().invoke(main, [
        "train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
        "--data", str(corpus), "--cache", str(tmp_path / "cache"), "--workers", "1"])
    assert result.exit_code == EXIT_INPUT_ERROR
    assert result.output.splitlines().count(
        "edge-train: error: source_ranking_weight needs a source with both bona fide and "
        "spoofed training clips; the training clips have none") == 1
    assert "Traceback" not in result.output


JAX_CHECK = """
import numpy as np
from host_training.model import ModelConfig, build_model
from host_training.source_ranking import SourceRankingLoss
model = build_model((100, 40), ModelConfig(stem_channels=4, blocks=1, dense_units=8))
model.compile(optimizer="adam", loss=SourceRankingLoss(1.0, 0.1))
x = np.random.default_rng(0).normal(size=(16, 100, 40, 1)).astype("float32")
y = np.stack([np.r_[np.ones(8), np.zeros(8)], np.arange(16) % 3 - 1.0], 1)
loss = model.fit(x, y.astype("float32"), epochs=1, verbose=0).history["loss"][0]
print("ok" if np.isfinite(loss) else "nan")
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax (the jax extra)")
def test_the_loss_trains_on_jax() -> None:
    assert on_jax_cpu("-c", JAX_CHECK).strip().splitlines()[-1] == "ok"
