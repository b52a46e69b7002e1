"""Per-epoch capped sampling and the running weight average used by training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host_training.datasets import Utterance
from host_training.sampling import capped_selection, group_of
from host_training.train import WeightAverage


def _utt(key: str, system: str, speaker: str) -> Utterance:
    return Utterance(Path(f"{speaker}-{system}.flac"), key, system, speaker)


def test_groups_are_systems_and_bona_fide_sources() -> None:
    assert group_of(_utt("spoof", "mimic3_vits", "VCTK_p281")) == "spoof:mimic3_vits"
    assert group_of(_utt("bonafide", "-", "FSDD_nicolas")) == "bonafide:FSDD"
    assert group_of(_utt("bonafide", "-", "LJ")) == "bonafide:LJ"
    assert group_of(_utt("bonafide", "-", "EXT_google_unk")) == "bonafide:EXT_google"


def test_caps_limit_big_groups_and_keep_small_ones_whole() -> None:
    utts = ([_utt("spoof", "big", f"S{i}") for i in range(50)]
            + [_utt("spoof", "small", f"S{i}") for i in range(3)]
            + [_utt("bonafide", "-", f"FSDD_{i}") for i in range(40)]
            + [_utt("bonafide", "-", f"LS_{i}") for i in range(5)])
    rng = np.random.default_rng(0)
    chosen = capped_selection(utts, spoof_cap=10, bonafide_cap=20, rng=rng)
    groups = [group_of(utts[i]) for i in chosen]
    assert groups.count("spoof:big") == 10
    assert groups.count("spoof:small") == 3
    assert groups.count("bonafide:FSDD") == 20
    assert groups.count("bonafide:LS") == 5
    assert np.all(np.diff(chosen) > 0)
    # A fresh subset each epoch: the big group is not always the same ten clips.
    again = capped_selection(utts, spoof_cap=10, bonafide_cap=20, rng=rng)
    assert set(chosen[:10]) != set(again[:10])


def test_no_caps_keeps_every_clip() -> None:
    utts = [_utt("spoof", "a", "x")] * 7 + [_utt("bonafide", "-", "LJ")] * 4
    chosen = capped_selection(utts, 0, 0, np.random.default_rng(1))
    assert chosen.tolist() == list(range(11))


def test_weight_average_is_the_mean_from_its_start_epoch() -> None:
    average = WeightAverage(start=2)
    assert not average.update(1, [np.array([100.0])])  # before the start: ignored
    assert not average.update(2, [np.array([1.0])])  # one epoch is not an average yet
    assert average.update(3, [np.array([3.0])])
    assert average.update(4, [np.array([5.0])])
    np.testing.assert_allclose(average.weights()[0], [3.0])
    assert not WeightAverage(start=0).update(5, [np.array([1.0])])


def test_clip_store_reads_float32_clips_from_int16_shards(tmp_path: Path) -> None:
    from host_training import waveforms
    from host_training.waveforms import write_store

    clips = [np.array([0, 16384, -32768], dtype=np.int16), np.array([100, 200], dtype=np.int16),
             np.array([1, 2, 3, 4], dtype=np.int16)]
    original = waveforms.SHARD_BYTES
    waveforms.SHARD_BYTES = 10  # two clips a shard at most: reads cross shard files
    try:
        store = write_store(tmp_path / "clips", iter(clips))
    finally:
        waveforms.SHARD_BYTES = original
    assert len(store) == 3 and sorted(p.name for p in (tmp_path / "clips").iterdir()) == [
        "index.npy", "shard-00000.i16", "shard-00001.i16"]
    np.testing.assert_array_equal(store[0], np.array([0.0, 0.5, -1.0], dtype=np.float32))
    assert store[-1].dtype == np.float32 and store[-1].shape == (4,)
    np.testing.assert_array_equal(store.read(2, 1, 2) * 32768, [2, 3])
    chosen = store.select([1, 1, 0])
    assert len(chosen) == 3 and [c.shape[0] for c in chosen] == [2, 2, 3]
    with pytest.raises(IndexError):
        store[3]
    assert not list(tmp_path.glob(".partial-*"))


def test_a_store_another_run_published_first_stands(tmp_path: Path, monkeypatch) -> None:
    """Two runs sharing a cache decode the same clips at once (measured: three of eight runs
    started together died in os.replace, 'Directory not empty'). The one that publishes
    second keeps the first one's store and leaves nothing behind."""
    import os

    from host_training import waveforms
    from host_training.waveforms import write_store

    clips = [np.array([1, 2, 3], dtype=np.int16), np.array([4, 5], dtype=np.int16)]
    folder = tmp_path / "clips"
    real_replace = os.replace

    def other_run_publishes_first(source, target):
        if Path(target) == folder and not folder.exists():
            monkeypatch.setattr(waveforms.os, "replace", real_replace)
            write_store(tmp_path / "other", iter(clips))  # the other run's own partial
            real_replace(tmp_path / "other", folder)
            monkeypatch.setattr(waveforms.os, "replace", other_run_publishes_first)
        real_replace(source, target)

    monkeypatch.setattr(waveforms.os, "replace", other_run_publishes_first)
    published = (folder / "index.npy")
    store = write_store(folder, iter(clips))
    assert published.exists() and len(store) == 2
    np.testing.assert_array_equal(store[1] * 32768, [4, 5])
    assert not list(tmp_path.glob(".partial-*"))
    # A folder without an index is a leftover, not a store: it is replaced.
    monkeypatch.setattr(waveforms.os, "replace", real_replace)
    published.unlink()
    store = write_store(folder, iter(clips[:1]))
    assert len(store) == 1 and published.exists()


def test_teacher_scores_soften_targets_and_missing_clips_keep_labels(tmp_path: Path) -> None:
    import json

    from host_training.config import config_from_dict
    from host_training.train import training_targets

    utts = [_utt("spoof", "a", "x"), _utt("bonafide", "-", "LJ"), _utt("spoof", "b", "y")]
    scores = tmp_path / "teacher.json"
    scores.write_text(json.dumps({str(utts[0].path.resolve()): 0.2,
                                  str(utts[1].path.resolve()): 0.6}))
    labels = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    config = config_from_dict({"training": {"teacher_scores": str(scores),
                                            "teacher_weight": 0.5}})
    lines: list[str] = []
    targets = training_targets(utts, labels, config, lines.append)
    np.testing.assert_allclose(targets, [0.6, 0.3, 1.0])
    assert "2 of 3 clips" in lines[0]
    plain = config_from_dict({})
    assert training_targets(utts, labels, plain) is labels
    with pytest.raises(ValueError, match="teacher_scores"):
        config_from_dict({"training": {"teacher_weight": 0.5}})


def test_speaker_balance_weighs_each_voices_classes_alike() -> None:
    from host_training.sampling import SPEAKER_BALANCE_MAX_FACTOR, speaker_balanced_weights

    def utt(speaker: str, spoof: bool, i: int) -> Utterance:
        return Utterance(Path(f"{speaker}{i}.flac"), "spoof" if spoof else "bonafide",
                         "tts" if spoof else "-", speaker)

    # LJ: 2 bona fide, 6 spoofs; slt: 3 bona fide, 1 spoof; VCTK: 4 bona fide only; one clip
    # not chosen this epoch.
    utts = ([utt("LJ", False, i) for i in range(2)] + [utt("LJ", True, i) for i in range(6)]
            + [utt("slt", False, i) for i in range(3)] + [utt("slt", True, 0)]
            + [utt("VCTK_p1", False, i) for i in range(4)] + [utt("LJ", True, 99)])
    labels = np.array([u.is_spoof for u in utts], dtype=np.float32)
    chosen = np.arange(16)
    weights = speaker_balanced_weights(utts, chosen, labels)
    assert weights[16] == 0
    lj_ratio = weights[2:8].sum() / weights[0:2].sum()
    slt_ratio = weights[11] / weights[8:11].sum()
    assert lj_ratio == pytest.approx(slt_ratio)  # raw: 3 and 1/3
    assert weights[chosen][labels[chosen] == 0].sum() == pytest.approx(
        weights[chosen][labels[chosen] == 1].sum())
    assert weights[chosen].mean() == pytest.approx(1.0)
    # One bona fide clip against 100 spoofs of its voice weighs at most MAX_FACTOR times a
    # bona fide clip of a voice with no spoofs, not 50 times.
    lone = ([utt("X", False, 0)] + [utt("X", True, i) for i in range(100)]
            + [utt("Y", False, i) for i in range(10)])
    lone_labels = np.array([u.is_spoof for u in lone], dtype=np.float32)
    lone_weights = speaker_balanced_weights(lone, np.arange(len(lone)), lone_labels)
    assert lone_weights[0] / lone_weights[101] == pytest.approx(SPEAKER_BALANCE_MAX_FACTOR)
