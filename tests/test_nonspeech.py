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


def test_sound_packages_are_train_or_test_never_both(tmp_path: Path) -> None:
    assert not set(nonspeech.TRAIN_SOUND_PACKAGES) & set(nonspeech.TEST_SOUND_PACKAGES)
    for package in ("zaz-data", "bucklespring-data"):
        folder = tmp_path / package / "usr/share/games/x"
        folder.mkdir(parents=True)
        (folder / "boom.wav").write_bytes(b"")
        (folder / "excellent.wav").write_bytes(b"")  # spoken, by its name
    found = nonspeech.sound_files(roots=(), packages_root=tmp_path)
    assert {(f.package, f.split) for f in found} == {("zaz-data", "train"),
                                                     ("bucklespring-data", "test")}
    assert {f.key for f in found} == {"zaz-data/usr/share/games/x/boom.wav",
                                      "bucklespring-data/usr/share/games/x/boom.wav"}


def test_voice_screen_flags_words_not_whispers_hallucinations(tmp_path: Path) -> None:
    from host_training.voice_screen import Screened, read_screen, voice_keys, write_screen

    rows = [Screened("a/excellent.wav", 0.04, "Excellent!"),
            Screened("a/beep.wav", 0.30, "you"),  # Whisper's word for silence: no voice
            Screened("a/boom.wav", 0.90, "The end."),  # Whisper hears no speech
            Screened("a/scream.wav", 0.25, "AAAAH!")]
    path = tmp_path / "screen.tsv"
    write_screen(path, rows)
    assert {r.key for r in read_screen(path)} == {r.key for r in rows}
    assert voice_keys(path) == {"a/excellent.wav", "a/scream.wav"}
    assert voice_keys(tmp_path / "missing.tsv") == set()


def test_the_committed_voice_screen_flags_the_known_voice_lines() -> None:
    from host_training.voice_screen import SCREEN_FILE, voice_keys

    voices = voice_keys(SCREEN_FILE)
    for key in ("lincity-ng-data/usr/share/games/lincity-ng/sounds/SubstationOff.wav",
                "netpanzer-data/usr/share/games/netpanzer/sound/move_affirm.wav"):
        assert key in voices


def test_gate_selection_speech_is_a_fixed_slice_of_the_train_splits() -> None:
    from host_training.speech_gate import SPEECH_VAL_SHARE, speech_part

    names = [Path(f"/corpus/train/flac/LA_T_{i:07d}.flac") for i in range(2000)]
    parts = [speech_part(p) for p in names]
    assert set(parts) == {"train", "val"}
    assert abs(parts.count("val") / len(parts) - SPEECH_VAL_SHARE) < 0.04
    # Fixed by the file name alone, and not the same cut as the non-speech validation.
    assert speech_part(Path("/x/LA_T_0000001.flac")) == speech_part(names[1])
    cut = [nonspeech.file_split(Path(p.name + "#val"), test_share=0.15) == "test"
           for p in names]
    assert cut != [part == "val" for part in parts]


def test_gate_threshold_without_the_non_speech_set_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edge_runtime.errors import EXIT_INPUT_ERROR
    from edge_runtime.model import default_speech_model_path
    from host_training.cli import main

    card = default_speech_model_path().with_suffix(".json")
    before = card.read_bytes()
    result = CliRunner().invoke(main, ["gate", "threshold", "--dev-only", "--nonspeech",
                                       str(tmp_path / "missing"), "--speech", str(tmp_path)])
    assert result.exit_code == EXIT_INPUT_ERROR, result.output
    assert "edge-train: error:" in result.output and "Traceback" not in result.output
    assert card.read_bytes() == before  # the card is untouched
