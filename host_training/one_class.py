"""One-class head: bona fide embeddings gathered round one direction, spoofs kept away from it.

OC-softmax (Zhang, Jiang and Nie, IEEE SPL 2021): a sigmoid head draws one boundary between
the training spoofs and the bona fide speech, and an unseen system can fall on either side of
it; this head asks only bona fide speech to be compact (cosine to a learnt direction above
``BONAFIDE_MARGIN``) and every spoof to stay outside a looser cone (below ``SPOOF_MARGIN``), so
whatever is unlike the bona fide speech seen in training scores as spoof.

The model's output stays a spoof score in [0, 1], ``(1 - cosine) / 2``, so thresholds, the
card and the board read it as they read the sigmoid's probability. Every op of the layer
(MUL, SUM, RSQRT, ADD) has an int8 TFLite kernel.
"""

from __future__ import annotations

import keras
from keras import ops

# The paper's margins and scale (ASVspoof 2019 LA): cosine >= 0.9 for bona fide, <= 0.2 for
# spoof, losses sharpened by 20.
BONAFIDE_MARGIN = 0.9
SPOOF_MARGIN = 0.2
SCALE = 20.0
_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="edge_detect")
class CosineSpoofScore(keras.layers.Layer):
    """Embedding -> (1 - cosine to a learnt bona fide direction) / 2."""

    def build(self, input_shape) -> None:
        self.direction = self.add_weight(shape=(input_shape[-1], 1), name="direction",
                                         initializer="glorot_uniform")

    def call(self, embedding):
        unit = embedding * ops.rsqrt(
            ops.sum(embedding * embedding, axis=-1, keepdims=True) + _EPSILON)
        direction = self.direction * ops.rsqrt(ops.sum(self.direction * self.direction))
        return 0.5 - 0.5 * ops.matmul(unit, direction)


@keras.saving.register_keras_serializable(package="edge_detect")
class OneClassLoss(keras.losses.Loss):
    """OC-softmax's loss on the score above; a soft target t weighs the spoof side by t."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "one_class", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        # labels may come as (batch,) beside scores of (batch, 1): broadcasting would pair
        # every label with every score
        target = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
        target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        cosine = 1.0 - 2.0 * y_pred
        spoof_side = ops.softplus(SCALE * (cosine - SPOOF_MARGIN))
        bonafide_side = ops.softplus(SCALE * (BONAFIDE_MARGIN - cosine))
        return ops.mean(target * spoof_side + (1.0 - target) * bonafide_side, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
