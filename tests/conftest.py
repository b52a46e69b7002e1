"""Shared fixtures: generated audio and the shipped model. Keep test-specific fixtures in the
test module that uses them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_runtime.model import default_model_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts: a process started from a background job
    inherits SIGINT ignored, and Python then raises no KeyboardInterrupt, so the child gets
    the default disposition a terminal's Ctrl-C meets."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a little noise (not real speech, but
    it has pitch, formant-like harmonics and pauses, which is what the front end cares about)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
    signal = 0.2 * voiced * envelope + 0.005 * rng.standard_normal(t.shape)
    return signal.astype(np.float32)


def on_jax_cpu(*args: str, timeout: float = 300) -> str:
    """``python *args`` run from the repo root with Keras on JAX's CPU backend (this process
    has Keras on TensorFlow); its stdout, once it has exited 0 (else its stderr's tail fails
    the test)."""
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def two_source_corpus(root: Path, spoof_speaker: str = "LJ_0") -> Path:
    """A protocol-layout corpus under ``root``: bona fide of two sources (LJ_0, VCTK_1) and
    buzzy spoofs of ``spoof_speaker``, 8 of each in train and 4 in dev."""
    (root / "protocols").mkdir(parents=True)
    for split, count in (("train", 8), ("dev", 4)):
        (root / split / "flac").mkdir(parents=True)
        lines = []
        for i in range(count):
            for key, speaker in (("bonafide", "LJ_0"), ("bonafide", "VCTK_1"),
                                 ("spoof", spoof_speaker)):
                utt = f"{split}_{key}_{speaker}_{i}"
                audio = speech_like(0.8 + 0.1 * i, seed=i + 7 * len(lines))
                if key == "spoof":
                    t = np.arange(audio.shape[0]) / 16000
                    audio = 0.5 * audio + 0.1 * np.sign(np.sin(2 * np.pi * 110 * t))
                sf.write(root / split / "flac" / f"{utt}.flac", audio.astype(np.float32), 16000)
                lines.append(f"{speaker} {utt} - {'-' if key == 'bonafide' else 'buzz'} {key}")
        (root / "protocols" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def write_audio(tmp_path: Path):
    """write_audio(name, samples, rate=16000, subtype=None) -> Path of a new audio file."""

    def _write(name: str, samples: np.ndarray, rate: int = 16000,
               subtype: str | None = None) -> Path:
        path = tmp_path / name
        sf.write(path, samples, rate, subtype=subtype)
        return path

    return _write


@pytest.fixture(scope="session")
def shipped_model_path() -> Path:
    return default_model_path()


def asoundrc(devices: dict[str, Path]) -> str:
    """An .asoundrc whose ALSA file-plugin capture devices play raw 16-bit files: a microphone
    for pyaudio on a machine with no sound card."""
    blocks = []
    for name, infile in devices.items():
        blocks.append(f"""pcm.{name} {{
  type file
  slave.pcm "null"
  file "/dev/null"
  infile "{infile}"
  format "raw"
  hint {{ show on description "{name}" }}
}}
""")
    return "\n".join(blocks)
