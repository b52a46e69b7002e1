"""The NumPy polyphase resampler against scipy.signal.resample_poly (the oracle, host side),
and the board's path to a score without scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import firwin, resample_poly

from edge_runtime.polyphase import PolyphaseResampler, design_filter
from tests.conftest import REPO, speech_like

FACTORS = [(1, 3), (160, 441), (2, 1), (1, 2), (40, 147), (1, 6), (5, 4), (1, 24)]


@pytest.mark.parametrize(("up", "down"), FACTORS)
def test_matches_resample_poly(up: int, down: int) -> None:
    max_rate = max(up, down)
    reference_filter = firwin(20 * max_rate + 1, 1 / max_rate, window=("kaiser", 5.0))
    np.testing.assert_allclose(design_filter(up, down), reference_filter, rtol=1e-12,
                               atol=1e-15)
    x = np.random.default_rng(up * 1000 + down).standard_normal(12345).astype(np.float32)
    expected = resample_poly(x.astype(np.float64), up, down)
    got = PolyphaseResampler(up, down)(x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-7 * np.abs(expected).max())


def test_long_inputs_are_done_in_blocks_with_the_same_result() -> None:
    x = speech_like(3.0, rate=48000)
    whole = PolyphaseResampler(1, 3)(x)
    np.testing.assert_allclose(whole, resample_poly(x.astype(np.float64), 1, 3), atol=2e-7)
    assert whole.shape == (48000,)


def test_a_48_khz_file_is_scored_without_importing_scipy(tmp_path: Path) -> None:
    clip = tmp_path / "48k.wav"
    sf.write(clip, speech_like(2.0, rate=48000), 48000)
    code = ("import sys; from edge_runtime.clip import ClipScorer; "
            "from edge_runtime.model import SpoofModel; "
            f"ClipScorer(SpoofModel()).score_file({str(clip)!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"
