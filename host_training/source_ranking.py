"""Within-source ranking: a spoof scores above the real speech of its own source.

Real speech and spoofs of one source share its channel: LJ Speech's voice is spoofed in 1,784
training clips and real in 212, a demo page's real and generated clips went through the same
recording chain and the same encoder. The plain loss scores each clip alone, so "sounds like
this source" pays wherever a source leans to one class, and unseen real speech from a familiar
kind of channel (eval's VCTK clips, 79 % rejected by v2.5) is called spoof. Here every batch
also pays, for each pair of a bona fide clip and a spoof of the same source
(``sampling.source_of``: the speaker's corpus or the demo page), the logistic ranking loss of
their logits, softplus(z_bona_fide - z_spoof): only what differs between the two inside one
channel lowers it. Sources with clips of one class only take no part.

The detector is unchanged (the loss reads its spoof probability): nothing to strip at export.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from host_training.datasets import Utterance
from host_training.sampling import source_of

NO_SOURCE = -1  # a clip whose source has one class only: in no pair
# Probabilities are clipped this far from 0 and 1 before their logit is taken.
LOGIT_EPSILON = 1e-6


def ranking_sources(utterances: list[Utterance]) -> tuple[np.ndarray, list[str]]:
    """Each clip's source index among the sources with both classes (``NO_SOURCE`` for the
    others) and those sources' names, sorted."""
    classes: dict[str, set[bool]] = {}
    for utterance in utterances:
        classes.setdefault(source_of(utterance), set()).add(utterance.is_spoof)
    names = sorted(name for name, seen in classes.items() if len(seen) == 2)
    index = {name: i for i, name in enumerate(names)}
    ids = np.array([index.get(source_of(u), NO_SOURCE) for u in utterances], dtype=np.float32)
    return ids, names


@keras.saving.register_keras_serializable(package="edge_detect")
class SourceRankingLoss(keras.losses.Loss):
    """Per clip: the detector's binary cross-entropy (Keras's own, as the plain detector is
    trained with) plus ``weight`` times the batch's mean within-source ranking loss (the same
    for every clip; 0 for a batch with no pair). Targets are (spoof target, source index); a
    target above 0.5 is a spoof, so label smoothing and soft targets keep their side."""

    def __init__(self, weight: float, label_smoothing: float = 0.0,
                 name: str = "source_ranking", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.weight, self.label_smoothing = weight, label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        probability = y_pred[:, :1]
        detector = keras.losses.binary_crossentropy(
            y_true[:, :1], probability, label_smoothing=self.label_smoothing)
        p = ops.clip(probability[:, 0], LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
        logit = ops.log(p) - ops.log(1.0 - p)
        source = y_true[:, 1]
        spoof = y_true[:, 0] > 0.5
        # pairs[i, j]: clip i bona fide, clip j a spoof, one source
        pairs = (ops.expand_dims(source, 1) == ops.expand_dims(source, 0)) \
            & ops.expand_dims(source >= 0, 1) \
            & ops.expand_dims(~spoof, 1) & ops.expand_dims(spoof, 0)
        margins = ops.expand_dims(logit, 1) - ops.expand_dims(logit, 0)
        count = ops.sum(ops.cast(pairs, y_pred.dtype))
        ranking = ops.sum(ops.where(pairs, ops.softplus(margins), 0.0)) / ops.maximum(count, 1.0)
        return detector + self.weight * ranking

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight,
                "label_smoothing": self.label_smoothing}
