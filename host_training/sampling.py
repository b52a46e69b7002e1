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


def group_of(utterance: Utterance) -> str:
    if utterance.is_spoof:
        return f"spoof:{utterance.system}"
    parts = utterance.speaker.split("_")
    source = "_".join(parts[:2]) if parts[0] == "EXT" else parts[0]
    return f"bonafide:{source}"


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
