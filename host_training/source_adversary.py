"""Source-adversarial training: real speech that does not tell where it was recorded.

The detector should call real speech real whatever corpus, microphone or page it comes from.
Trained on a few bona fide sources (FSDD digits, KLettres letters, LJ Speech, VCTK, LibriSpeech,
the demo pages' ground truth), it can learn what those sources sound like instead, and then
rejects real speech from others: v2.5 rejects 60 % of extra dev's YouTube clips (VoiceCraft's
page) and 79 % of eval's VCTK clips. So, on the bona fide class only, a small head learns to
guess each clip's source from the detector's embedding, and the embedding is trained to leave
it guessing: towards a uniform guess (domain confusion, Tzeng et al. 2015). Spoofs take no
part: a spoofing system's page is a cue the detector may keep.

Why confusion and not a gradient reversal (Ganin et al. 2016): a reversed cross-entropy has no
floor, and on this model the embedding grew until the head's loss passed 10^4 in the first
epoch, with every clip scored alike; a uniform guess is a floor (log of the source count).

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
SOURCE_GUESS = "source_guess"
NO_SOURCE = -1  # a spoof's source column: no guess asked


def bona_fide_sources(utterances: list[Utterance]) -> tuple[np.ndarray, list[str]]:
    """Each clip's bona fide source index (``NO_SOURCE`` for spoofs) and the sources' names,
    the groups the epoch caps use (``sampling.group_of``), sorted."""
    names = sorted({group_of(u) for u in utterances if not u.is_spoof})
    index = {name: i for i, name in enumerate(names)}
    ids = np.array([NO_SOURCE if u.is_spoof else index[group_of(u)] for u in utterances],
                   dtype=np.float32)
    return ids, names


@keras.saving.register_keras_serializable(package="edge_detect")
class SourceGuess(keras.layers.Layer):
    """A two-layer guess of the source from an embedding, given twice: once for fitting the
    guess (the embedding held still) and once for confusing it (the guess held still), so
    one forward pass trains the head on the first and the embedding on the second."""

    def __init__(self, sources: int, units: int = SOURCE_HEAD_UNITS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sources, self.units = sources, units

    def build(self, input_shape) -> None:
        self.hidden = self.add_weight(shape=(input_shape[-1], self.units), name="hidden",
                                      initializer="glorot_uniform")
        self.hidden_bias = self.add_weight(shape=(self.units,), name="hidden_bias",
                                           initializer="zeros")
        self.out = self.add_weight(shape=(self.units, self.sources), name="out",
                                   initializer="glorot_uniform")
        self.out_bias = self.add_weight(shape=(self.sources,), name="out_bias",
                                        initializer="zeros")

    def _guess(self, x, weights):
        hidden, hidden_bias, out, out_bias = weights
        return ops.matmul(ops.relu(ops.matmul(x, hidden) + hidden_bias), out) + out_bias

    def call(self, embedding):
        weights = (self.hidden, self.hidden_bias, self.out, self.out_bias)
        fit = self._guess(ops.stop_gradient(embedding), weights)
        confuse = self._guess(embedding, [ops.stop_gradient(w) for w in weights])
        return ops.concatenate([fit, confuse], axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "sources": self.sources, "units": self.units}


@keras.saving.register_keras_serializable(package="edge_detect")
class SourceAdversaryLoss(keras.losses.Loss):
    """Per clip: the detector's binary cross-entropy (Keras's own, as the plain detector is
    trained with) and, for bona fide clips, the head's cross-entropy to
    the true source plus ``weight`` times the cross-entropy of the confusing guess to a uniform
    one. Targets are (spoof target, source index); predictions are the spoof probability, then
    the fitting and the confusing guesses' logits."""

    def __init__(self, weight: float, label_smoothing: float = 0.0,
                 name: str = "source_adversary", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.weight, self.label_smoothing = weight, label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        detector = keras.losses.binary_crossentropy(
            y_true[:, :1], y_pred[:, :1], label_smoothing=self.label_smoothing)
        sources = (y_pred.shape[-1] - 1) // 2
        fit, confuse = y_pred[:, 1:1 + sources], y_pred[:, 1 + sources:]
        source = ops.cast(y_true[:, 1], "int32")
        asked = source >= 0
        guess = keras.losses.sparse_categorical_crossentropy(
            ops.where(asked, source, 0), fit, from_logits=True)
        uniform = -ops.mean(ops.log_softmax(confuse, axis=-1), axis=-1)
        return detector + ops.where(asked, guess + self.weight * uniform, 0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight,
                "label_smoothing": self.label_smoothing}


def with_source_head(detector, sources: int):
    """The training model: ``detector``'s layers, its spoof probability and the source head's
    two guesses from its embedding, side by side in one output of 1 + 2 ``sources`` columns."""
    guesses = SourceGuess(sources, name=SOURCE_GUESS)(detector.get_layer(EMBEDDING_LAYER).output)
    both = keras.layers.Concatenate(name="spoof_and_source")([detector.output, guesses])
    return keras.Model(detector.input, both, name="source_adversarial")


def detector_of(model):
    """The detector inside a training model (the model itself when it has no source head)."""
    if SOURCE_GUESS not in {layer.name for layer in model.layers}:
        return model
    return keras.Model(model.input, model.get_layer(SPOOF_OUTPUT).output, name="specrnet_edge")
