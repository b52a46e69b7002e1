"""Source-adversarial training: real speech that does not tell where it was recorded.

The detector should call real speech real whatever corpus, microphone or page it comes from.
Trained on a few bona fide sources (FSDD digits, KLettres letters, LJ Speech, VCTK, LibriSpeech,
the demo pages' ground truth), it can learn what those sources sound like instead, and then
rejects real speech from others: v2.5 rejects 60 % of extra dev's YouTube clips (VoiceCraft's
page) and most of eval's VCTK clips. Domain-adversarial training (Ganin et al., JMLR 2016),
on the bona fide class only: a small head guesses each bona fide clip's source from the
detector's embedding, and a gradient-reversal layer in front of it makes the embedding unlearn
what the head finds, while the spoof head trains as before. Spoofs take no part in the guess:
a spoofing system's page is a cue the detector may keep.

The detector (what is scored on dev, saved as best.keras, exported and run on the board) is the
same network as without the head: the head exists only in the training model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from host_training.datasets import Utterance
from host_training.sampling import group_of

SOURCE_HEAD_UNITS = 64
# The layer the head reads: the detector's embedding before its last activation.
EMBEDDING_LAYER = "dense"
SPOOF_OUTPUT = "spoof_probability"
SOURCE_LOGITS = "source_logits"
NO_SOURCE = -1  # a spoof's source column: no guess asked
_EPSILON = 1e-7  # Keras's own clip for probabilities in cross-entropy


def bona_fide_sources(utterances: list[Utterance]) -> tuple[np.ndarray, list[str]]:
    """Each clip's bona fide source index (``NO_SOURCE`` for spoofs) and the sources' names,
    the groups the epoch caps use (``sampling.group_of``), sorted."""
    names = sorted({group_of(u) for u in utterances if not u.is_spoof})
    index = {name: i for i, name in enumerate(names)}
    ids = np.array([NO_SOURCE if u.is_spoof else index[group_of(u)] for u in utterances],
                   dtype=np.float32)
    return ids, names


@keras.saving.register_keras_serializable(package="edge_detect")
class GradientReversal(keras.layers.Layer):
    """Identity forward; backward, the gradient times ``-scale``. Written with stop_gradient
    (forward: stop(x (1 + s)) - s x = x; backward: -s), so it is the same on every backend."""

    def __init__(self, scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return ops.stop_gradient(inputs * (1.0 + self.scale)) - self.scale * inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="edge_detect")
class SourceAdversaryLoss(keras.losses.Loss):
    """Per clip: the detector's binary cross-entropy (targets smoothed like
    keras.losses.BinaryCrossentropy's) plus, for bona fide clips, the source head's
    cross-entropy. Targets are (spoof target, source index); predictions are the spoof
    probability followed by the source logits."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "source_adversary",
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        target = y_true[:, 0] * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        spoof = ops.clip(y_pred[:, 0], _EPSILON, 1.0 - _EPSILON)
        detector = -(target * ops.log(spoof) + (1.0 - target) * ops.log(1.0 - spoof))
        source = ops.cast(y_true[:, 1], "int32")
        asked = source >= 0
        guess = keras.losses.sparse_categorical_crossentropy(
            ops.where(asked, source, 0), y_pred[:, 1:], from_logits=True)
        return detector + ops.where(asked, guess, 0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def with_source_head(detector, sources: int, scale: float):
    """The training model: ``detector``'s layers, its spoof probability and, through a
    gradient reversal of ``scale``, a source guess from its embedding, side by side in one
    output of 1 + ``sources`` columns."""
    if sources < 2:
        raise ValueError(f"source_adversary_weight needs bona fide clips of 2 or more sources; "
                         f"the training clips have {sources}")
    layers = keras.layers
    x = GradientReversal(scale, name="source_reversal")(
        detector.get_layer(EMBEDDING_LAYER).output)
    x = layers.Dense(SOURCE_HEAD_UNITS, activation="relu", name="source_hidden")(x)
    logits = layers.Dense(sources, name=SOURCE_LOGITS)(x)
    both = layers.Concatenate(name="spoof_and_source")([detector.output, logits])
    return keras.Model(detector.input, both, name="source_adversarial")


def detector_of(model):
    """The detector inside a training model (the model itself when it has no source head)."""
    if SOURCE_LOGITS not in {layer.name for layer in model.layers}:
        return model
    return keras.Model(model.input, model.get_layer(SPOOF_OUTPUT).output, name="specrnet_edge")
