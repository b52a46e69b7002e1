"""The original SpecRNet layout (Kawa et al. 2022, reference code piotrkawa/specrnet), in Keras.

Used as the baseline that our edge model is compared with on the same data in the same run.
Faithful to the reference forward pass: input batch norm + SELU; three residual blocks of
20 / 64 / 64 channels (batch norm, LeakyReLU(0.3), 3x3 convs, 1x1 projection when the width
changes, max-pool 2 inside the block); after each block a feature-map-scaling attention
(sigmoid(Dense(GAP(x))), x * s + s) and another max-pool 2; batch norm + SELU; mean over
frequency; a 2-layer bidirectional GRU of 64 units over time (unrolled, so TFLite gets plain
int8 ops instead of a while loop); last step -> Dense(128) -> Dense(1, sigmoid).
As in the reference code, a block's first convolution reads the block input directly (its
pre-activation batch norm is computed but unused there), which we keep for fidelity.
"""

from __future__ import annotations


def _residual_block(x, channels: int, name: str):
    import keras

    layers = keras.layers
    identity = x
    out = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(x)
    out = layers.BatchNormalization(name=f"{name}_bn2")(out)
    out = layers.LeakyReLU(negative_slope=0.3)(out)
    out = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(out)
    if identity.shape[-1] != channels:
        identity = layers.Conv2D(channels, 1, name=f"{name}_downsample")(identity)
    out = layers.Add()([out, identity])
    return layers.MaxPooling2D(2)(out)


def _attention(x, name: str):
    import keras

    layers = keras.layers
    channels = x.shape[-1]
    scale = layers.GlobalAveragePooling2D()(x)
    scale = layers.Dense(channels, activation="sigmoid", name=f"{name}_fc")(scale)
    scale = layers.Reshape((1, 1, channels))(scale)
    return layers.Add()([layers.Multiply()([x, scale]), scale])


def build_specrnet(input_shape: tuple[int, int]):
    """(frames, bands) -> spoof probability, original SpecRNet layout."""
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.BatchNormalization(name="first_bn")(inputs)
    x = layers.Activation("selu")(x)
    for index, channels in enumerate((20, 64, 64)):
        x = _residual_block(x, channels, name=f"block{index}")
        x = _attention(x, name=f"attention{index}")
        x = layers.MaxPooling2D(2)(x)
    x = layers.BatchNormalization(name="bn_before_gru")(x)
    x = layers.Activation("selu")(x)
    frames, bands, channels = x.shape[1:]
    x = layers.AveragePooling2D(pool_size=(1, bands), name="mean_over_frequency")(x)
    x = layers.Reshape((frames, channels))(x)
    x = layers.Bidirectional(layers.GRU(64, return_sequences=True, unroll=True))(x)
    x = layers.Bidirectional(layers.GRU(64, return_sequences=False, unroll=True))(x)
    x = layers.Dense(128, name="fc1_gru")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="spoof_probability")(x)
    return keras.Model(inputs, outputs, name="specrnet_original")
