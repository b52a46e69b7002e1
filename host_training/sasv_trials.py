"""Spoofing-aware speaker verification (SASV) trials, ASVspoof 5 style, from protocol corpora.

A *speaker* is a protocol speaker id naming one person (ids ending in ``_unk`` are demo pages
with many voices and are left out) with enough bona fide clips of at least ``min_seconds``
(a pass phrase, not a syllable or a digit). The first ``enrol_clips`` of them (in a seeded
shuffle) enrol the speaker; the rest are tested. Three kinds of trial, each against one enrolled
speaker:

- target: a held-out bona fide clip of that speaker (the owner speaking),
- nontarget: a held-out bona fide clip of another enrolled speaker (a live stranger),
- spoof: a spoofed clip whose protocol speaker is that speaker (a TTS voice trained on them, a
  voice conversion aimed at them, a HiFi-GAN copy-synthesis twin of their own clip).

Per speaker at most ``max_tests`` target and ``max_spoofs`` spoof trials are drawn (LJ has 212
bona fide and ~1800 spoofed clips; without a cap it would be most of the trials).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from host_training.datasets import Utterance, load_split

# False-accept rates on the non-target trials at which the speaker card records a threshold.
FAR_TARGETS = (0.005, 0.01, 0.02, 0.05)

TARGET, NONTARGET, SPOOF = "target", "nontarget", "spoof"
# Corpora and splits the measurement reads by default: (root, split).
DEFAULT_SOURCES = (
    (Path("/work/shared/data/spoofmix"), "train"),
    (Path("/work/shared/data/spoofmix"), "dev"),
    (Path("/work/shared/data/spoofmix"), "eval"),
    (Path("cache/spoofmix-extra"), "train"),
    (Path("cache/spoofmix-extra"), "dev"),
    (Path("/work/data/gen/hifigan"), "train"),
)


@dataclass(frozen=True)
class Trial:
    speaker: str  # the enrolled speaker the trial claims to be
    utterance: Utterance
    kind: str  # TARGET, NONTARGET or SPOOF


@dataclass(frozen=True)
class TrialSet:
    enrolment: dict[str, tuple[Path, ...]]
    trials: tuple[Trial, ...]

    def count(self, kind: str) -> int:
        return sum(trial.kind == kind for trial in self.trials)


def is_one_person(speaker: str) -> bool:
    return not speaker.endswith("_unk") and speaker not in {"-", ""}


def duration_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def read_sources(sources: Iterable[tuple[Path, str]]) -> list[Utterance]:
    utterances: list[Utterance] = []
    for root, split in sources:
        if (Path(root) / "protocols" / f"{split}.txt").exists():
            utterances.extend(load_split(Path(root), split))
    return utterances


def build_trials(utterances: list[Utterance], *, enrol_clips: int = 3, min_tests: int = 1,
                 min_seconds: float = 1.0, max_tests: int = 10, max_spoofs: int = 20,
                 max_nontargets: int = 60, seed: int = 0) -> TrialSet:
    """Enrolments and trials as the module docstring describes (seeded, reproducible)."""
    rng = random.Random(seed)
    bonafide: dict[str, list[Utterance]] = defaultdict(list)
    spoofed: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        if not is_one_person(utterance.speaker):
            continue
        if utterance.is_spoof:
            spoofed[utterance.speaker].append(utterance)
        elif duration_seconds(utterance.path) >= min_seconds:
            bonafide[utterance.speaker].append(utterance)
    enrolment: dict[str, tuple[Path, ...]] = {}
    tests: dict[str, list[Utterance]] = {}
    for speaker in sorted(bonafide):
        clips = sorted(bonafide[speaker], key=lambda u: str(u.path))
        if len(clips) < enrol_clips + min_tests:
            continue
        rng.shuffle(clips)
        enrolment[speaker] = tuple(u.path for u in clips[:enrol_clips])
        tests[speaker] = clips[enrol_clips:enrol_clips + max_tests]
    trials: list[Trial] = []
    for speaker in enrolment:
        trials.extend(Trial(speaker, u, TARGET) for u in tests[speaker])
        others = [u for other, clips in tests.items() if other != speaker for u in clips]
        rng.shuffle(others)
        trials.extend(Trial(speaker, u, NONTARGET) for u in others[:max_nontargets])
        spoofs = sorted(spoofed.get(speaker, []), key=lambda u: str(u.path))
        rng.shuffle(spoofs)
        trials.extend(Trial(speaker, u, SPOOF) for u in spoofs[:max_spoofs])
    return TrialSet(enrolment, tuple(trials))


def threshold_at_far(nontarget: np.ndarray, far: float) -> float:
    """Lowest threshold that accepts at most ``far`` of the non-target trials."""
    scores = np.sort(np.asarray(nontarget, dtype=np.float64))
    allowed = int(np.floor(far * len(scores)))
    return float(np.nextafter(scores[len(scores) - allowed - 1], np.inf))
