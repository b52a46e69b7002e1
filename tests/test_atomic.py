"""The one write pattern: a file is whole or absent, and a failed writer leaves the old one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_runtime.atomic import (
    PARTIAL_PREFIX,
    atomic_output,
    remove_partial_files,
    write_text_atomically,
)


def test_a_failed_writer_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_the_temporary_name_keeps_the_suffix_and_the_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "vocoder.weights.h5"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_output(target, durable=True) as temporary:
        assert temporary.name.startswith(PARTIAL_PREFIX)
        assert temporary.name.endswith(".weights.h5") and temporary.parent == tmp_path
        temporary.write_text("new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_new_files_get_ordinary_permissions_and_leftovers_are_removed(tmp_path: Path) -> None:
    write_text_atomically(tmp_path / "a.txt", "text")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    (tmp_path / f"{PARTIAL_PREFIX}x-a.txt").write_text("left by a killed run")
    remove_partial_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
