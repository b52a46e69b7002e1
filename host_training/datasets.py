"""Dataset readers: ASVspoof-style protocol files and plain bonafide/ + spoof/ folders.

Every reader returns a list of Utterance; nothing here reads audio.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")
DATA_ENV = "EDGE_DETECT_DATA"


@dataclass(frozen=True)
class Utterance:
    path: Path
    key: str  # "bonafide" or "spoof"
    system: str  # attack id ("-" for bona fide)
    speaker: str

    @property
    def is_spoof(self) -> bool:
        return self.key == "spoof"


class DatasetError(ValueError):
    pass


def default_data_root() -> Path:
    """The corpus root: $EDGE_DETECT_DATA, else ../shared/data/spoofmix beside the checkout."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "spoofmix"


def _find_audio(audio_dir: Path, utt_id: str) -> Path:
    for suffix in AUDIO_SUFFIXES:
        candidate = audio_dir / f"{utt_id}{suffix}"
        if candidate.exists():
            return candidate
    return audio_dir / f"{utt_id}.flac"


def read_asvspoof2019(protocol: Path, audio_dir: Path) -> list[Utterance]:
    """ASVspoof 2019 LA / spoofmix: ``SPEAKER UTT - SYSTEM KEY`` per line."""
    utterances = []
    for number, line in enumerate(protocol.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5 or parts[4] not in ("bonafide", "spoof"):
            raise DatasetError(f"{protocol}:{number}: expected 'SPEAKER UTT - SYSTEM KEY'")
        speaker, utt, _, system, key = parts
        utterances.append(Utterance(_find_audio(audio_dir, utt), key, system, speaker))
    return utterances


def read_folders(root: Path) -> list[Utterance]:
    """``root/bonafide/**`` and ``root/spoof/**`` audio files; the sub-folder of spoof/ names
    the system when there is one (``spoof/tts_a/x.wav`` -> system ``tts_a``)."""
    utterances = []
    for key in ("bonafide", "spoof"):
        folder = root / key
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            relative = path.relative_to(folder)
            system = relative.parts[0] if key == "spoof" and len(relative.parts) > 1 else "-"
            if key == "spoof" and system == "-":
                system = "unknown"
            utterances.append(Utterance(path, key, system, "-"))
    if not utterances:
        raise DatasetError(f"{root}: no audio under bonafide/ or spoof/")
    return utterances


def read_spoofmix_split(root: Path, split: str) -> list[Utterance]:
    """One split of spoofmix (or any corpus laid out as protocols/<split>.txt + <split>/flac)."""
    protocol = root / "protocols" / f"{split}.txt"
    if not protocol.exists():
        raise DatasetError(f"{protocol}: protocol not found (is --data the corpus root?)")
    return read_asvspoof2019(protocol, root / split / "flac")


def load_split(root: Path, split: str) -> list[Utterance]:
    """A split by name from a corpus root: protocol layout if present, else folders."""
    if (root / "protocols").is_dir():
        return read_spoofmix_split(root, split)
    split_dir = root / split
    return read_folders(split_dir if split_dir.is_dir() else root)


def summarize(utterances: list[Utterance]) -> dict[str, object]:
    keys = Counter(u.key for u in utterances)
    systems = Counter(u.system for u in utterances if u.is_spoof)
    return {"files": len(utterances), "bonafide": keys["bonafide"], "spoof": keys["spoof"],
            "systems": dict(sorted(systems.items()))}
