"""Dataset readers: ASVspoof protocol and key files (2019 LA/PA, 2021 LA/DF, ASVspoof 5), the
corpus layout (``protocols/<split>.txt`` + ``<split>/flac``) and plain bonafide/ + spoof/ folders.

Every reader returns a list of Utterance; nothing here decodes audio. A malformed protocol line
raises DatasetError naming ``file:line`` and what was expected.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.audio import AUDIO_SUFFIXES, audio_files_in

DATA_ENV = "EDGE_DETECT_DATA"
KEYS = ("bonafide", "spoof")


@dataclass(frozen=True)
class Utterance:
    path: Path
    key: str  # "bonafide" or "spoof"
    system: str  # attack id ("-" for bona fide)
    speaker: str
    condition: str = "-"  # channel / codec of the trial where the protocol names one

    @property
    def is_spoof(self) -> bool:
        return self.key == "spoof"


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class ProtocolFormat:
    """Where the fields sit in one line of a protocol format (0-based column indices)."""

    name: str
    columns: int
    layout: str  # the column names, for error messages
    key: int
    system: int
    condition: tuple[int, ...] = ()
    subset: int | None = None  # the 2021 keys' phase column (progress / eval / hidden)


ASVSPOOF2019 = ProtocolFormat(
    "ASVspoof 2019", 5, "SPEAKER UTT - SYSTEM KEY", key=4, system=3, condition=(2,))
ASVSPOOF2021_LA = ProtocolFormat(
    "ASVspoof 2021 LA key", 8, "SPEAKER TRIAL CODEC TRANSMISSION ATTACK KEY TRIM PHASE",
    key=5, system=4, condition=(2, 3), subset=7)
ASVSPOOF2021_DF = ProtocolFormat(
    "ASVspoof 2021 DF key", 13,
    "SPEAKER TRIAL CODEC SOURCE ATTACK KEY TRIM PHASE VOCODER TASK TEAM GENDER-PAIR LANGUAGE",
    key=5, system=4, condition=(2,), subset=7)
ASVSPOOF5 = ProtocolFormat(
    "ASVspoof 5", 10,
    "SPEAKER FLAC GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP",
    key=8, system=7, condition=(3, 4))
FORMATS = (ASVSPOOF2019, ASVSPOOF2021_LA, ASVSPOOF2021_DF, ASVSPOOF5)


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


def detect_format(parts: list[str]) -> ProtocolFormat | None:
    """The format whose column count and key column fit one split protocol line."""
    for fmt in FORMATS:
        if len(parts) == fmt.columns and parts[fmt.key] in KEYS:
            return fmt
    return None


def _protocol_lines(protocol: Path) -> list[tuple[int, list[str]]]:
    try:
        text = protocol.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{protocol}: protocol not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{protocol}: cannot read protocol ({error})") from None
    return [(number, line.split()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _unknown_format(protocol: Path, number: int, parts: list[str]) -> DatasetError:
    if len(parts) == 1:
        return DatasetError(
            f"{protocol}:{number}: a trial list without keys (one id per line); use the key "
            "file instead (ASVspoof 2021: keys/<LA|DF>/CM/trial_metadata.txt)")
    known = "; ".join(f"{f.name}: {f.columns} columns '{f.layout}'" for f in FORMATS)
    return DatasetError(f"{protocol}:{number}: unrecognised protocol line "
                        f"({len(parts)} columns); expected one of {known}")


def _utterance(fmt: ProtocolFormat, parts: list[str], audio_dir: Path) -> Utterance:
    key = parts[fmt.key]
    system = parts[fmt.system]
    # 2021 and ASVspoof 5 write "bonafide" in the attack column of bona fide trials.
    if key == "bonafide" or system == "bonafide":
        system = "-"
    condition = "/".join(parts[i] for i in fmt.condition if parts[i] not in ("-", "0"))
    return Utterance(_find_audio(audio_dir, parts[1]), key, system, parts[0], condition or "-")


def read_protocol(path: Path, audio_dir: Path, subset: str | None = None,
                  fmt: ProtocolFormat | None = None) -> list[Utterance]:
    """Any supported ASVspoof protocol or key file; the format is detected from its first line.

    Args:
        path: the protocol (``ASVspoof2019.LA.cm.train.trn.txt``, 2021 ``trial_metadata.txt``,
            ``ASVspoof5.train.tsv``, or a corpus ``protocols/<split>.txt``).
        audio_dir: the folder holding ``UTT.flac`` (or .wav, ...) for every line.
        subset: keep only trials of this phase (2021 keys: ``progress``, ``eval``, ``hidden``).
        fmt: force a format instead of detecting it.

    Raises:
        DatasetError: unreadable file, unknown format, a malformed line (``file:line``),
            a subset on a format without phases, or audio files that do not exist.
    """
    path = Path(path)
    audio_dir = Path(audio_dir)
    lines = _protocol_lines(path)
    if not lines:
        raise DatasetError(f"{path}: protocol is empty")
    if fmt is None:
        fmt = detect_format(lines[0][1])
        if fmt is None:
            raise _unknown_format(path, *lines[0])
    if subset is not None and fmt.subset is None:
        raise DatasetError(f"{path}: {fmt.name} protocols have no phase column to select "
                           f"subset '{subset}' from")
    utterances = []
    missing: list[tuple[int, Path]] = []
    for number, parts in lines:
        if len(parts) != fmt.columns:
            raise DatasetError(f"{path}:{number}: expected {fmt.columns} columns "
                               f"'{fmt.layout}' ({fmt.name}), got {len(parts)}")
        if parts[fmt.key] not in KEYS:
            raise DatasetError(f"{path}:{number}: key column is '{parts[fmt.key]}', "
                               "expected 'bonafide' or 'spoof'")
        if subset is not None and fmt.subset is not None and parts[fmt.subset] != subset:
            continue
        utterance = _utterance(fmt, parts, audio_dir)
        if not utterance.path.exists():
            missing.append((number, utterance.path))
        utterances.append(utterance)
    if missing:
        number, first = missing[0]
        raise DatasetError(f"{path}:{number}: {len(missing)} of {len(utterances)} audio files "
                           f"not found under {audio_dir} (first: {first.name})")
    if not utterances:
        raise DatasetError(f"{path}: no trials in subset '{subset}'")
    return utterances


def read_asvspoof2019(protocol: Path, audio_dir: Path) -> list[Utterance]:
    """ASVspoof 2019 LA / spoofmix: ``SPEAKER UTT - SYSTEM KEY`` per line."""
    return read_protocol(protocol, audio_dir, fmt=ASVSPOOF2019)


def read_folders(root: Path) -> list[Utterance]:
    """``root/bonafide/**`` and ``root/spoof/**`` audio files; the sub-folder of spoof/ names
    the system when there is one (``spoof/tts_a/x.wav`` -> system ``tts_a``)."""
    utterances = []
    for key in ("bonafide", "spoof"):
        folder = root / key
        if not folder.is_dir():
            continue
        for path in audio_files_in(folder):
            relative = path.relative_to(folder)
            system = relative.parts[0] if key == "spoof" and len(relative.parts) > 1 else "-"
            if key == "spoof" and system == "-":
                system = "unknown"
            utterances.append(Utterance(path, key, system, "-"))
    if not utterances:
        raise DatasetError(f"{root}: no audio under bonafide/ or spoof/")
    return utterances


def read_spoofmix_split(root: Path, split: str) -> list[Utterance]:
    """One split of spoofmix (or any corpus laid out as protocols/<split>.txt + <split>/flac);
    the protocol may be in any supported ASVspoof format."""
    protocol = root / "protocols" / f"{split}.txt"
    if not protocol.exists():
        raise DatasetError(f"{protocol}: protocol not found (is --data the corpus root?)")
    return read_protocol(protocol, root / split / "flac")


# Split names of the distributions as unpacked: split -> (protocol file, audio folder).
_ASVSPOOF2019_FILES = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
_ASVSPOOF5_FILES = {"train": ("ASVspoof5.train.tsv", "flac_T"),
                    "dev": ("ASVspoof5.dev.track_1.tsv", "flac_D"),
                    "eval": ("ASVspoof5.eval.track_1.tsv", "flac_E_eval")}


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def distribution_split(root: Path, split: str) -> tuple[Path, Path, str | None] | None:
    """(protocol, audio folder, subset) of a split when ``root`` is an ASVspoof distribution
    folder as unpacked, else None.

    - ASVspoof 2019 ``LA/`` (or ``PA/``): ``ASVspoof2019_LA_cm_protocols/`` and
      ``ASVspoof2019_LA_<split>/flac``; splits train, dev, eval.
    - ASVspoof 5: ``ASVspoof5.<...>.tsv`` (at the root or in ``ASVspoof5_protocols/``) and
      ``flac_T``, ``flac_D``, ``flac_E_eval``; splits train, dev, eval.
    - ASVspoof 2021 LA / DF eval: ``ASVspoof2021_<LA|DF>_eval/flac`` and the keys package
      (``keys/<LA|DF>/CM/trial_metadata.txt``, possibly inside ``<LA|DF>-keys-full/``); the
      split names the phase: progress, eval or hidden.
    """
    for track in ("LA", "PA"):
        protocols = root / f"ASVspoof2019_{track}_cm_protocols"
        if protocols.is_dir() and split in _ASVSPOOF2019_FILES:
            name = f"ASVspoof2019.{track}.cm.{_ASVSPOOF2019_FILES[split]}.txt"
            return protocols / name, root / f"ASVspoof2019_{track}_{split}" / "flac", None
    if split in _ASVSPOOF5_FILES:
        name, audio = _ASVSPOOF5_FILES[split]
        protocol = _first_existing([root / name, root / "ASVspoof5_protocols" / name])
        if protocol is not None:
            return protocol, root / audio, None
    for track in ("LA", "DF"):
        audio = root / f"ASVspoof2021_{track}_eval" / "flac"
        if not audio.is_dir():
            continue
        key = _first_existing([
            root / prefix / "keys" / track / "CM" / "trial_metadata.txt"
            for prefix in (".", f"{track}-keys-full", f"{track}-keys-stage-1")])
        if key is None:
            raise DatasetError(f"{root}: ASVspoof 2021 {track} audio found but no key file "
                               f"(unpack {track}-keys-full.tar.gz here: "
                               f"keys/{track}/CM/trial_metadata.txt)")
        return key, audio, split
    return None


def load_split(root: Path, split: str) -> list[Utterance]:
    """A split by name from a corpus root: protocol layout if present, an ASVspoof
    distribution folder as unpacked, else bonafide/ + spoof/ folders."""
    root = Path(root)
    if (root / "protocols").is_dir():
        return read_spoofmix_split(root, split)
    found = distribution_split(root, split)
    if found is not None:
        protocol, audio_dir, subset = found
        return read_protocol(protocol, audio_dir, subset=subset)
    split_dir = root / split
    return read_folders(split_dir if split_dir.is_dir() else root)


def summarize(utterances: list[Utterance]) -> dict[str, object]:
    keys = Counter(u.key for u in utterances)
    systems = Counter(u.system for u in utterances if u.is_spoof)
    return {"files": len(utterances), "bonafide": keys["bonafide"], "spoof": keys["spoof"],
            "systems": dict(sorted(systems.items()))}
