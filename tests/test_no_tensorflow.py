"""The board has no TensorFlow: nothing under edge_runtime may import it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[1] / "edge_runtime"


def test_no_static_tensorflow_import() -> None:
    offenders = []
    for path in RUNTIME.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in
                          ("tensorflow", "keras", "host_training")]
    assert not offenders


def test_scoring_a_file_loads_no_tensorflow() -> None:
    """Imports every runtime module and scores a demo clip in a fresh interpreter."""
    modules = sorted(p.relative_to(RUNTIME.parent).with_suffix("").as_posix().replace("/", ".")
                     for p in RUNTIME.rglob("*.py") if p.name != "__main__.py")
    sample = str(RUNTIME.parent / "samples" / "spoof_piper_joe.flac")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "from edge_runtime.clip import ClipScorer\n"
        "from edge_runtime.model import SpoofModel\n"
        f"ClipScorer(SpoofModel()).score_file({sample!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
