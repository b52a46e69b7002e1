"""Files that are whole or absent: the one write pattern for everything edge-detect writes.

A file is written under a temporary name in its own folder (so the rename cannot cross file
systems) and renamed over the target only when the writer finished; a writer that fails leaves
the old file, or nothing. Leftovers of a process killed mid-write carry PARTIAL_PREFIX.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL_PREFIX = ".partial-"


def _new_file_mode() -> int:
    # What open() would give a new file: rw for all, less the process umask.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer to fill; renamed over ``path`` when the
    block ends normally, removed when it raises.

    The temporary name ends with ``path``'s own name, so writers that choose a format by the
    suffix (``.flac``, ``.npz``, ``.weights.h5``) choose the same one. An existing file's
    permissions are kept. ``durable`` also flushes the data to the disk before the rename, for
    files whose loss on a power cut matters (a lock's profile, a saved clip).
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=f"-{path.name}",
                                    dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = _new_file_mode()
        os.chmod(temporary, mode)
        if durable:
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike[str], text: str, *,
                          durable: bool = False) -> None:
    """``text`` (UTF-8) into ``path``, whole or not at all."""
    with atomic_output(path, durable=durable) as temporary:
        temporary.write_text(text, encoding="utf-8")


def remove_partial_files(folder: str | os.PathLike[str]) -> None:
    """Deletes what writers killed mid-write left in ``folder``."""
    for leftover in Path(folder).glob(f"{PARTIAL_PREFIX}*"):
        leftover.unlink(missing_ok=True)
