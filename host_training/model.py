"""The Keras SpecRNet-style edge model: small residual CNN over log filterbank features.

Shape of the seed's SpecRNet (channels doubling per block, dense -> dropout -> sigmoid, no
batch norm) with the GRU replaced by global pooling so that every op has an int8 TFLite kernel.
The activation is a config choice because it decides int8 speed: Keras SELU lowers to five
elementwise ops and ELU stays float in TFLite, while ReLU / LeakyReLU / hard_swish are native.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("relu", "leaky_relu", "selu", "hard_swish", "elu")
ARCHITECTURES = ("edge", "specrnet")


@dataclass(frozen=True)
class ModelConfig:
    # "edge": the model below; "specrnet": the original layout (host_training.baseline).
    architecture: str = "edge"
    activation: str = "relu"
    stem_channels: int = 8
    blocks: int = 3
    dense_units: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}")


def _activation(name: str):
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.3)
    if name == "hard_swish":
        return keras.layers.Activation("hard_swish")
    return keras.layers.Activation(name)


def build_model(input_shape: tuple[int, int], config: ModelConfig):
    """(frames, bands) -> spoof probability."""
    import keras

    if config.architecture == "specrnet":
        from host_training.baseline import build_specrnet

        return build_specrnet(input_shape)

    layers = keras.layers
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Conv2D(config.stem_channels, 3, padding="same", name="stem_conv")(inputs)
    x = _activation(config.activation)(x)
    x = layers.MaxPooling2D(2)(x)
    channels = config.stem_channels
    for block in range(config.blocks):
        channels *= 2
        shortcut = layers.Conv2D(channels, 1, name=f"block{block}_skip")(x)
        x = layers.Conv2D(channels, 3, padding="same", name=f"block{block}_conv1")(x)
        x = _activation(config.activation)(x)
        x = layers.Conv2D(channels, 3, padding="same", name=f"block{block}_conv2")(x)
        x = layers.Add()([x, shortcut])
        x = _activation(config.activation)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(config.dense_units, name="dense")(x)
    x = _activation(config.activation)(x)
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="spoof_probability")(x)
    return keras.Model(inputs, outputs, name="specrnet_edge")
