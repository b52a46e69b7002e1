"""The non-speech set's generators and its train/test split (host side, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host_training import nonspeech


@pytest.mark.parametrize("kind", nonspeech.SYNTHETIC_KINDS)
def test_every_generator_gives_finite_audio_in_range(kind: str) -> None:
    rng = np.random.default_rng(7)
    for test in (False, True):
        audio = nonspeech.synthetic_clip(kind, rng, test=test, seconds=1.5)
        assert audio.dtype == np.float32 and audio.shape == (24000,)
        assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
        if kind != "silence":
            assert np.max(np.abs(audio)) > 10 ** (-31 / 20)


def test_generators_are_reproducible_and_seeds_differ() -> None:
    def draw(seed: int) -> np.ndarray:
        return nonspeech.synthetic_clip("melody", np.random.default_rng(seed), seconds=1.0)

    np.testing.assert_array_equal(draw(1), draw(1))
    assert not np.array_equal(draw(1), draw(2))
    assert nonspeech.SPLIT_SEEDS["train"] != nonspeech.SPLIT_SEEDS["test"]


def test_a_source_file_lands_in_one_split_by_its_name() -> None:
    names = [Path(f"/usr/share/x/{i}.ogg") for i in range(400)]
    splits = [nonspeech.file_split(p) for p in names]
    assert 0.15 < splits.count("test") / len(splits) < 0.35
    assert nonspeech.file_split(Path("/a/b/song.mid")) == nonspeech.file_split(Path("/c/song.mid"))


def test_spoken_sound_files_are_excluded() -> None:
    for name in ("audio-channel-front-left.oga", "excellent.wav", "dammit.wav"):
        assert nonspeech.is_speech_name(Path(name))
    for name in ("bell.oga", "camera-shutter.oga", "expl_ball.wav"):
        assert not nonspeech.is_speech_name(Path(name))


def test_manifest_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = nonspeech.BuildCounts({"train": 1, "test": 1}, {"train": 0, "test": 0},
                                   {"train": 0, "test": 0})
    monkeypatch.setattr(nonspeech, "sound_files", lambda *a, **k: [])
    monkeypatch.setattr(nonspeech, "fluidsynth_available", lambda: False)
    clips = nonspeech.build_nonspeech(tmp_path, counts, log=lambda _: None)
    assert len(clips) == 2 * len(nonspeech.SYNTHETIC_KINDS)
    test = nonspeech.read_manifest(tmp_path, "test")
    assert {c.kind for c in test} == set(nonspeech.SYNTHETIC_KINDS)
    assert all(c.path.is_file() for c in test)
