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
# How the last feature map becomes one vector: "global" averages over time and frequency;
# "time" averages over time only and keeps each band group's channels, so the head knows
# where in the spectrum a trace lies (vocoder and codec artifacts sit in particular bands);
# "time_max" adds the maximum over time beside the mean, so a trace in a few frames is not
# averaged away over a 4 s window.
POOLINGS = ("global", "time", "time_max")
# "sigmoid": one dense unit, a boundary between training spoofs and bona fide speech;
# "one_class": a cosine to a bona fide direction (host_training.one_class), so what is unlike
# the training bona fide speech scores as spoof.
HEADS = ("sigmoid", "one_class")


@dataclass(frozen=True)
class ModelConfig:
    # "edge": the model below; "specrnet": the original layout (host_training.baseline).
    architecture: str = "edge"
    activation: str = "relu"
    stem_channels: int = 8
    blocks: int = 3
    dense_units: int = 64
    dropout: float = 0.3
    pooling: str = "global"
    # Bands merged by the max-pool after the stem (frames always 2). 2 keeps every later layer
    # at half the input's bands; with twice the bands (256 linear bands, about one FFT bin
    # each) 4 lets the stem see the finer spectrum while the blocks and their cost stay those
    # of a 128-band input (v2.5-fine.toml).
    stem_band_pool: int = 2
    head: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}")
        if self.stem_band_pool < 1:
            raise ValueError(f"stem_band_pool = {self.stem_band_pool}: must be 1 or more")


def _activation(name: str, board: bool = False):
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.3)
    if name == "hard_swish":
        if board:
            from host_training.board_layers import SixHardSwish

            return SixHardSwish()
        return keras.layers.Activation("hard_swish")
    return keras.layers.Activation(name)


# The one layer that reads the features rather than an activation.
_INPUT_LAYER = "stem_conv"


def build_model(input_shape: tuple[int, int], config: ModelConfig, board: bool = False):
    """(frames, bands) -> spoof probability. ``board``: hard-swish as 6 * hard_swish (see
    board_model); only for conversion."""
    import keras

    if config.architecture == "specrnet":
        from host_training.baseline import build_specrnet

        return build_specrnet(input_shape)

    layers = keras.layers
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Conv2D(config.stem_channels, 3, padding="same", name=_INPUT_LAYER)(inputs)
    x = _activation(config.activation, board)(x)
    x = layers.MaxPooling2D((2, config.stem_band_pool))(x)
    channels = config.stem_channels
    for block in range(config.blocks):
        channels *= 2
        shortcut = layers.Conv2D(channels, 1, name=f"block{block}_skip")(x)
        x = layers.Conv2D(channels, 3, padding="same", name=f"block{block}_conv1")(x)
        x = _activation(config.activation, board)(x)
        x = layers.Conv2D(channels, 3, padding="same", name=f"block{block}_conv2")(x)
        x = layers.Add()([x, shortcut])
        x = _activation(config.activation, board)(x)
        x = layers.MaxPooling2D(2)(x)
    if config.pooling == "global":
        x = layers.GlobalAveragePooling2D()(x)
    else:
        # Pools spanning all frames: AVERAGE_POOL_2D / MAX_POOL_2D, both int8 kernels.
        over_time = (x.shape[1], 1)
        pooled = [layers.AveragePooling2D(over_time, name="time_mean")(x)]
        if config.pooling == "time_max":
            pooled.append(layers.MaxPooling2D(over_time, name="time_max")(x))
        x = pooled[0] if len(pooled) == 1 else layers.Concatenate()(pooled)
        x = layers.Flatten(name="bands_channels")(x)
    x = layers.Dense(config.dense_units, name="dense")(x)
    if config.head == "one_class":
        from host_training.one_class import CosineSpoofScore

        # The embedding stays linear, as in OC-softmax: a cosine wants signed coordinates.
        x = layers.Dropout(config.dropout)(x)
        outputs = CosineSpoofScore(name="spoof_probability")(x)
    else:
        x = _activation(config.activation, board)(x)
        x = layers.Dropout(config.dropout)(x)
        outputs = layers.Dense(1, activation="sigmoid", name="spoof_probability")(x)
    return keras.Model(inputs, outputs, name="specrnet_edge")


def detector_loss(config: ModelConfig, label_smoothing: float):
    """The training loss that goes with the model's head."""
    import keras

    if config.head == "one_class":
        from host_training.one_class import OneClassLoss

        return OneClassLoss(label_smoothing=label_smoothing)
    return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)


def save_model(model, path) -> None:
    """``model`` to ``path`` (.keras) whole or not at all (``edge_runtime.atomic``): a GPU
    round collects a run's best.keras while the run may still be writing it."""
    from edge_runtime.atomic import atomic_output

    with atomic_output(path) as temporary:
        model.save(temporary)


def load_detector(path, compile: bool = True):
    """A saved detector (best.keras, last.keras, or its board form for the converter),
    whatever its head: the kit's own layers and loss are registered first."""
    import keras

    # imported for what they register: SixHardSwish, the one-class layer and loss, the
    # source-adversarial training model's source head and loss, the source-ranking loss
    import host_training.board_layers
    import host_training.one_class
    import host_training.source_adversary
    import host_training.source_ranking  # noqa: F401

    return keras.models.load_model(path, compile=compile)


def board_model(model, config: ModelConfig):
    """``model`` in the form converted to int8 for the board: the same function, with every
    op an int8 kernel that LiteRT's XNNPACK delegate runs (host_training.board_layers).

    Only hard-swish needs it: its activations become 6 * hard_swish(x), and every layer that
    reads an activation (all but the stem) has its kernel divided by 6 to match. Pooling and
    flattening between them are positively homogeneous, so the scores are the same."""
    if config.activation != "hard_swish" or config.architecture != "edge":
        return model
    board = build_model(tuple(model.input_shape[1:3]), config, board=True)
    for layer in board.layers:
        if not layer.weights:
            continue
        weights = model.get_layer(layer.name).get_weights()
        # (The one-class head's direction is divided too: a cosine ignores its scale.)
        if layer.name != _INPUT_LAYER:
            weights[0] = weights[0] / 6.0
        layer.set_weights(weights)
    return board
