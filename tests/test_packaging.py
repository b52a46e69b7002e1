"""The built wheel carries the shipped models: installed without the source tree, `edge-detect`
finds its model and classifies the demo clips. (.ci/run does the same in a fresh venv.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_runtime.model import MODEL_DIR
from tests.conftest import REPO, SAMPLES


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: an in-tree build/ folder would carry files deleted since into the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("edge_runtime", "host_training"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True)
    (built,) = out.glob("edge_detect-*.whl")
    return built


def test_wheel_ships_every_model_and_card(wheel: Path) -> None:
    shipped = {f"edge_runtime/models/{p.name}" for p in MODEL_DIR.iterdir()
               if p.suffix in (".tflite", ".json")}
    assert shipped, "no shipped model found in the source tree"
    with zipfile.ZipFile(wheel) as archive:
        assert shipped <= set(archive.namelist())


def test_installed_wheel_classifies_the_demo_clips(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    # The installed copy comes first on the path; run from elsewhere so the checkout cannot
    # stand in for it.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import edge_runtime.model as m; print(m.default_model_path())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target)
    clips = sorted(SAMPLES.glob("*.flac"))
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "classify", "--json", *map(str, clips)],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr  # the demo clips include spoofs
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(clips)
    assert {line["label"] for line in lines} <= {"bonafide", "spoof"}
