"""Neural vocoders for vocoded twins: F0 and excitation (NumPy), then a tiny vocoder of each
family trained for a few steps, saved, loaded, used to resynthesise and to write a corpus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from host_training.vocoders.config import CONFIG_FILE, WEIGHTS_FILE, VocoderConfig, VocoderError
from host_training.vocoders.pitch import estimate_f0, excitation
from tests.conftest import speech_like

RATE = 16000
# A few thousand parameters, hop 16: trains in well under a second per step on one core.
TINY = VocoderConfig(
    n_fft=128, n_mels=16, upsample_rates=(4, 4), upsample_kernels=(8, 8), channels=8,
    pre_kernel=3, resblock_kernels=(3,), resblock_dilations=((1, 2),), stack_dilations=(1, 3),
    harmonics=4, filter_channels=4, filter_blocks=1, filter_dilations=(1, 2),
    segment_seconds=0.1, batch_size=4, learning_rate=3e-3,
    stft_resolutions=((64, 16, 64), (128, 32, 128), (256, 64, 256)))


def run_cli(*args: str):
    return CliRunner().invoke(main_group(), list(args))


def main_group():
    from host_training.vocoders.cli import build_cli

    return build_cli()


def true_f0(frames: int, hop: int) -> np.ndarray:
    """The pitch speech_like() was generated with, at the centre of each frame."""
    t = (np.arange(frames) * hop + hop / 2) / RATE
    return 120 + 30 * np.sin(2 * np.pi * 0.7 * t)


# --------------------------------------------------------------------------- NumPy parts


def test_f0_follows_the_generated_pitch():
    audio = speech_like(2.0)
    f0 = estimate_f0(audio, RATE, 160)
    assert len(f0) == len(audio) // 160
    voiced = f0 > 0
    # The signal is voiced about half the time (its envelope is a clipped sine).
    assert 0.3 < voiced.mean() < 0.8
    error = np.abs(f0[voiced] - true_f0(len(f0), 160)[voiced]) / true_f0(len(f0), 160)[voiced]
    assert np.median(error) < 0.01
    assert np.quantile(error, 0.95) < 0.05


def test_f0_is_unvoiced_for_silence_and_noise():
    assert not estimate_f0(np.zeros(8000, np.float32), RATE, 160).any()
    noise = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    assert (estimate_f0(noise, RATE, 160) > 0).mean() < 0.2


def test_excitation_has_harmonics_below_nyquist_and_noise_when_unvoiced():
    rng = np.random.default_rng(0)
    f0 = np.array([0.0, 0.0, 3000.0, 3000.0, 0.0], np.float32)
    source = excitation(f0, 100, RATE, harmonics=4, rng=rng)
    assert source.shape == (500, 5)
    assert source.dtype == np.float32
    unvoiced, voiced = source[:200], source[250:350]
    assert not unvoiced[:, :4].any()
    assert unvoiced[:, 4].std() > 0.02
    # 3 kHz and 6 kHz fit under 8 kHz; 9 and 12 kHz must not be generated.
    assert voiced[:, 0].std() > 0.05 and voiced[:, 1].std() > 0.05
    assert not voiced[:, 2:4].any()
    assert voiced[:, 4].std() < 0.01


def test_config_round_trips_and_rejects_nonsense():
    assert VocoderConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    assert TINY.hop == 16 and TINY.segment_samples == 1600
    with pytest.raises(VocoderError, match="family"):
        replace(TINY, family="wavenet").validate()
    with pytest.raises(VocoderError, match="unknown vocoder config field"):
        VocoderConfig.from_dict({**TINY.to_dict(), "colour": "blue"})
    with pytest.raises(VocoderError, match="n_fft"):
        replace(TINY, n_fft=8).validate()


def test_cli_refuses_a_folder_that_is_not_a_vocoder(tmp_path: Path):
    result = run_cli("vocode", "--vocoder", str(tmp_path), "--data", str(tmp_path),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "not a vocoder folder" in result.output
    result = run_cli("vocode", "--vocoder", str(tmp_path / "missing"), "--data", str(tmp_path),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "no such vocoder folder" in result.output


# --------------------------------------------------------------------------- training (TF)


def training_clips() -> list[np.ndarray]:
    return [speech_like(0.6, seed=s) * g for s, g in ((0, 1.0), (1, 0.3), (2, 0.05))]


def train_tiny(family: str, folder: Path, steps: int = 20):
    from host_training.vocoders.training import train_vocoder

    return train_vocoder(replace(TINY, family=family), training_clips(), folder,
                         minutes=5.0, max_steps=steps, seed=0, log_every=5, log=lambda _: None)


@pytest.fixture(scope="module")
def tiny_hifigan(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("vocoder") / "hifigan"
    return folder, train_tiny("hifigan", folder)


def check_training(folder: Path, summary) -> None:
    assert summary.steps == 20
    assert summary.params < 10_000
    losses = [row["loss"] for row in summary.history]
    assert len(losses) == 4
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    saved = json.loads((folder / CONFIG_FILE).read_text())
    assert saved["params"] == summary.params
    assert saved["training"]["steps"] == 20
    assert (folder / WEIGHTS_FILE).is_file()


def check_twin(source: np.ndarray, twin: np.ndarray) -> None:
    assert twin.dtype == np.float32
    assert twin.shape == source.shape
    assert np.isfinite(twin).all()
    rms = float(np.sqrt(np.mean(np.square(source, dtype=np.float64))))
    assert np.sqrt(np.mean(np.square(twin, dtype=np.float64))) == pytest.approx(rms, rel=1e-3)


def test_hifigan_trains_saves_loads_and_resynthesises(tiny_hifigan):
    from host_training.vocoders.synthesis import load_vocoder, resynthesize, resynthesize_many

    folder, summary = tiny_hifigan
    check_training(folder, summary)
    vocoder = load_vocoder(folder)
    assert vocoder.config == replace(TINY, family="hifigan")
    # Lengths that are not whole hops, one shorter than an FFT frame, a quiet one.
    clips = [speech_like(0.37, seed=5), speech_like(0.004, seed=6), 0.01 * speech_like(1.3)]
    twins = resynthesize_many(clips, RATE, vocoder, batch_seconds=1.0)
    for source, twin in zip(clips, twins, strict=True):
        check_twin(source, twin)
    # The same weights give the same twin as the one-clip API.
    assert np.allclose(resynthesize(clips[0], RATE, vocoder), twins[0], atol=1e-5)
    # A clip at another rate comes back at that rate and length.
    other = speech_like(0.5, rate=22050)
    check_twin(other, resynthesize(other, 22050, vocoder))


def test_loaded_weights_are_the_trained_ones(tiny_hifigan, tmp_path: Path):
    from host_training.vocoders.networks import build_generator
    from host_training.vocoders.synthesis import load_vocoder, resynthesize
    from host_training.vocoders.training import save_vocoder

    folder, _ = tiny_hifigan
    clip = speech_like(0.5, seed=9)
    first = resynthesize(clip, RATE, load_vocoder(folder))
    again = resynthesize(clip, RATE, load_vocoder(folder))
    assert np.array_equal(first, again)
    # Untrained weights give a different twin, so the check above means something.
    config = replace(TINY, family="hifigan")
    save_vocoder(build_generator(config), config, tmp_path / "untrained")
    assert not np.allclose(first, resynthesize(clip, RATE, load_vocoder(tmp_path / "untrained")))


def make_corpus(root: Path) -> None:
    (root / "protocols").mkdir(parents=True)
    (root / "train" / "flac").mkdir(parents=True)
    lines = []
    for i, (speaker, key) in enumerate((("LJ", "bonafide"), ("VCTK_p1", "bonafide"),
                                        ("SYN_x", "spoof"))):
        utt = f"EDT_T_{i:06d}"
        sf.write(root / "train" / "flac" / f"{utt}.flac", speech_like(0.4 + 0.3 * i, seed=i),
                 RATE, subtype="PCM_16")
        lines.append(f"{speaker} {utt} - {'-' if key == 'bonafide' else 'espeak'} {key}\n")
    (root / "protocols" / "train.txt").write_text("".join(lines))


def test_vocode_writes_a_twins_corpus_and_resumes(tiny_hifigan, tmp_path: Path):
    folder, _ = tiny_hifigan
    make_corpus(tmp_path / "data")
    out = tmp_path / "twins"
    args = ["vocode", "--vocoder", str(folder), "--data", str(tmp_path / "data"),
            "--split", "train", "--out", str(out), "--cache", str(tmp_path / "cache"),
            "--name", "tiny"]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    protocol = (out / "protocols" / "train.txt").read_text().splitlines()
    assert protocol == ["LJ EDT_T_000000_tiny - neural_tiny spoof",
                        "VCTK_p1 EDT_T_000001_tiny - neural_tiny spoof"]
    for i in (0, 1):
        path = out / "train" / "flac" / f"EDT_T_00000{i}_tiny.flac"
        info = sf.info(path)
        assert (info.samplerate, info.subtype, info.format) == (RATE, "PCM_16", "FLAC")
        source = sf.read(tmp_path / "data" / "train" / "flac" / f"EDT_T_00000{i}.flac")[0]
        assert info.frames == len(source)
    assert sorted(p.name for p in (out / "train" / "flac").iterdir()) == [
        "EDT_T_000000_tiny.flac", "EDT_T_000001_tiny.flac"]
    # A second run keeps the twins already written and only rewrites the protocol.
    stamp = (out / "train" / "flac" / "EDT_T_000000_tiny.flac").stat().st_mtime_ns
    result = run_cli(*args)
    assert result.exit_code == 0 and result.stdout.startswith("0 twins")
    assert (out / "train" / "flac" / "EDT_T_000000_tiny.flac").stat().st_mtime_ns == stamp
    assert (out / "protocols" / "train.txt").read_text().splitlines() == protocol


def test_library_reads_back_the_twins_corpus(tiny_hifigan, tmp_path: Path):
    from host_training.datasets import load_split

    folder, _ = tiny_hifigan
    make_corpus(tmp_path / "data")
    result = run_cli("vocode", "--vocoder", str(folder), "--data", str(tmp_path / "data"),
                     "--out", str(tmp_path / "twins"), "--cache", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    twins = load_split(tmp_path / "twins", "train")
    assert [(u.speaker, u.key, u.system) for u in twins] == [
        ("LJ", "spoof", "neural_hifigan"), ("VCTK_p1", "spoof", "neural_hifigan")]
    assert all(u.path.is_file() for u in twins)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["melgan", "nsf"])
def test_other_families_train_and_resynthesise(family: str, tmp_path: Path):
    from host_training.vocoders.synthesis import load_vocoder, resynthesize_many

    summary = train_tiny(family, tmp_path / family)
    check_training(tmp_path / family, summary)
    vocoder = load_vocoder(tmp_path / family)
    clips = [speech_like(0.53, seed=3), speech_like(1.1, seed=4) * 0.2]
    for source, twin in zip(clips, resynthesize_many(clips, RATE, vocoder), strict=True):
        check_twin(source, twin)


def test_main_reports_bad_options_without_traceback(tmp_path: Path):
    result = run_cli("train", "--family", "wavenet", "--out", str(tmp_path / "v"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert run_cli("--help").exit_code == 0
