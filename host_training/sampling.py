"""Which training clips an epoch sees: every clip, or a fresh capped share of each group.

A group is a spoofing system, or a bona fide source (speaker-id prefix: ``FSDD_``, ``KL_``,
``LS_``, ``VCTK_``, ``EXT_<owner>``, ...). spoofmix-extra holds 337 training systems, a few of
them with hundreds of clips (Mimic 3, Larynx), and spoofmix's bona fide half is mostly FSDD digits
and KLettres letters: uncapped, the boundary learns those few instead of what all share.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from host_training.datasets import Utterance


def source_of(utterance: Utterance) -> str:
    """Where a clip's speaker comes from: the speaker id's corpus prefix, or ``EXT_<owner>``
    for the extra corpus (a demo page, or a speaker id where the page names one)."""
    parts = utterance.speaker.split("_")
    return "_".join(parts[:2]) if parts[0] == "EXT" else parts[0]


def group_of(utterance: Utterance) -> str:
    if utterance.is_spoof:
        return f"spoof:{utterance.system}"
    return f"bonafide:{source_of(utterance)}"


def capped_selection(utterances: list[Utterance], spoof_cap: int, bonafide_cap: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of one epoch: each group whole, or a random ``cap`` of it (0 = no cap)."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, utterance in enumerate(utterances):
        members[group_of(utterance)].append(index)
    chosen: list[int] = []
    for group, indices in members.items():
        cap = spoof_cap if group.startswith("spoof:") else bonafide_cap
        if cap and len(indices) > cap:
            indices = rng.choice(indices, size=cap, replace=False).tolist()
        chosen.extend(indices)
    return np.sort(np.asarray(chosen, dtype=int))


# A speaker's rarer class weighs at most this many times a clip of its commoner class, so a
# voice with 1 bona fide clip and 300 spoofs does not hang the boundary on that one clip.
SPEAKER_BALANCE_MAX_FACTOR = 5.0


def speaker_balanced_weights(utterances: list[Utterance], chosen: np.ndarray,
                             labels: np.ndarray) -> np.ndarray:
    """Sample weights over all clips (0 outside ``chosen``) under which every speaker
    (protocol speaker id; ``EXT_<page>_unk`` for a demo page) that has both classes this epoch
    holds its bona fide and spoofed clips in the same proportion, and the two classes weigh the
    same overall: the label no longer depends on the voice. (Each such speaker's classes are
    first made equal, then each class is scaled to half the total, which moves every speaker's
    proportion alike.)

    Without it a voice is a label: LJ Speech's voice is spoofed in 1,526 training clips and
    bona fide in 188, so "sounds like LJ" pays as a spoof cue.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for index in chosen:
        counts[utterances[index].speaker][int(labels[index])] += 1
    weights = np.zeros(len(utterances), dtype=np.float64)
    for index in chosen:
        per_class = counts[utterances[index].speaker]
        mine = per_class[int(labels[index])]
        factor = 1.0
        if min(per_class) > 0:
            factor = min(sum(per_class) / (2.0 * mine), SPEAKER_BALANCE_MAX_FACTOR)
        weights[index] = factor
    # Classes at half the total each, and a mean weight of 1, as class weights alone give.
    total = weights.sum()
    for label in (0, 1):
        mask = np.zeros(len(utterances), dtype=bool)
        mask[chosen] = labels[chosen] == label
        if weights[mask].sum() > 0:
            weights[mask] *= (total / 2.0) / weights[mask].sum()
    return (weights * (len(chosen) / total)).astype(np.float32)
