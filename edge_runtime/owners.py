"""Enrolled owners: one JSON file per owner holding a speaker embedding and a threshold, never
audio.

The store is a folder (default: ``$EDGE_DETECT_OWNERS``, else ``$XDG_DATA_HOME/edge-detect/owners``,
else ``~/.local/share/edge-detect/owners``). Each owner file is written whole or not at all
(``edge_runtime.atomic``, flushed to disk before the rename), so a crash or power cut mid-write
leaves the previous record or none, never half of one. A record names the speaker model it was
made with (its sha256): an embedding from another model means nothing and is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.atomic import remove_partial_files, write_text_atomically
from edge_runtime.errors import OwnerError

STORE_ENV = "EDGE_DETECT_OWNERS"
# 2: the threshold is on the embedder's score scale (``score_scale``: "as-norm" or "cosine").
STORE_FORMAT_VERSION = 2
# Letters, digits, '_', '-', '.'; not starting with '.', so a name is always a plain file name.
OWNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_ENROL_CLIPS = 1


def default_store_dir() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "edge-detect" / "owners"


def check_name(name: str) -> str:
    if not OWNER_NAME.fullmatch(name):
        raise OwnerError(f"owner name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
                         "not starting with '.'")
    return name


def enrolment_embedding(embeddings: list[np.ndarray]) -> np.ndarray:
    """An owner's embedding: the normalised mean of their clips' unit embeddings."""
    if not embeddings:
        raise ValueError("enrolment needs at least one clip")
    units = [np.asarray(e, dtype=np.float64) / np.linalg.norm(e) for e in embeddings]
    mean = np.mean(units, axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


@dataclass(frozen=True)
class Owner:
    name: str
    embedding: np.ndarray  # unit vector
    threshold: float  # speaker score at or above which a clip is this owner's
    model_sha256: str  # the speaker model the embedding came from
    clips: int  # how many clips enrolled the owner
    enrolled: str  # ISO 8601 UTC time of enrolment
    score_scale: str = "cosine"  # the scale of ``threshold`` (edge_runtime.speaker_score)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": STORE_FORMAT_VERSION, "name": self.name,
                "threshold": self.threshold, "score_scale": self.score_scale,
                "model_sha256": self.model_sha256,
                "clips": self.clips, "enrolled": self.enrolled,
                "embedding": [round(float(v), 7) for v in self.embedding]}

    @classmethod
    def from_dict(cls, raw: Any) -> Owner:
        if not isinstance(raw, dict) or raw.get("format_version") != STORE_FORMAT_VERSION:
            raise ValueError("not an owner record of this version (records made before "
                             "speaker-score normalisation hold a cosine threshold)")
        embedding = np.asarray(raw["embedding"], dtype=np.float32)
        if embedding.ndim != 1 or embedding.size < 2 or not np.all(np.isfinite(embedding)):
            raise ValueError("embedding is not a finite vector")
        if not math.isclose(float(np.linalg.norm(embedding)), 1.0, abs_tol=1e-3):
            raise ValueError("embedding is not of unit length")
        threshold = float(raw["threshold"])
        if not math.isfinite(threshold):
            raise ValueError(f"threshold {threshold} is not a number")
        return cls(name=check_name(str(raw["name"])), embedding=embedding, threshold=threshold,
                   model_sha256=str(raw["model_sha256"]), clips=int(raw["clips"]),
                   enrolled=str(raw["enrolled"]), score_scale=str(raw["score_scale"]))


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class OwnerStore:
    """A folder of owner records (``NAME.json``)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_store_dir()

    def path_for(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if OWNER_NAME.fullmatch(p.stem))

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def save(self, owner: Owner) -> Path:
        path = self.path_for(owner.name)
        try:
            # Owner records are personal data: the folder is the user's alone.
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            remove_partial_files(self.folder)
            write_text_atomically(path, json.dumps(owner.to_dict(), indent=1) + "\n",
                                  durable=True)
        except OSError as error:
            raise OwnerError(f"{path}: cannot write the owner record "
                             f"({error.strerror or error})") from None
        return path

    def load(self, name: str, model_sha256: str | None = None,
             score_scale: str | None = None) -> Owner:
        path = self.path_for(name)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise OwnerError(f"owner {name!r} is not enrolled in {self.folder} (enrolled: "
                             f"{known}); run `edge-detect enrol {name} FILE...` first") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise OwnerError(f"{path}: unreadable owner record ({error})") from None
        try:
            owner = Owner.from_dict(raw)
        except (KeyError, TypeError, ValueError) as error:
            raise OwnerError(f"{path}: invalid owner record ({error}); enrol again") from None
        if owner.name != name:
            raise OwnerError(f"{path}: the record is for {owner.name!r}, not {name!r}")
        if model_sha256 is not None and owner.model_sha256 != model_sha256:
            raise OwnerError(f"owner {name!r} was enrolled with another speaker model "
                             f"({owner.model_sha256[:12]}...); enrol again with this one")
        if score_scale is not None and owner.score_scale != score_scale:
            raise OwnerError(f"owner {name!r} has a {owner.score_scale} threshold but the "
                             f"speaker model scores on the {score_scale} scale; enrol again")
        return owner
