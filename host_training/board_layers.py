"""Layers that exist only in the form of a model that is converted to int8 for the board.

LiteRT's XNNPACK delegate runs int8 CONV_2D, ADD and MUL but not int8 HARD_SWISH: a hard-swish
model's graph is cut into one delegate partition per activation with the builtin kernel in
between, which measured 4.4 ms per window on x86 against 0.84 ms for the same network with
ReLU (1 thread). ``SixHardSwish`` computes 6 * hard_swish(x) = x * relu6(x + 3), which the
converter writes as ADD (fused RELU6) and MUL, both delegated; the factor 6 is taken out of the
weights of every layer that reads an activation (``host_training.model.board_model``).
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="edge_detect")
class SixHardSwish(keras.layers.Layer):
    """6 * hard_swish(x), without the division that would let the converter fuse it back."""

    def call(self, inputs):
        return inputs * keras.ops.relu6(inputs + 3.0)
