"""One SAM step of a linear least-squares model, against the step worked out by hand.

Run as a script under any backend (the SAM tests run it under JAX in a child process):
prints the largest difference between Keras's weights after the step and the expected ones.
"""

from __future__ import annotations

import numpy as np

RHO = 0.5
LEARNING_RATE = 0.1


def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets and starting weights of a 3-input linear model."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    return x, y, rng.normal(size=(3, 1)).astype(np.float32)


def expected_sam_step() -> np.ndarray:
    x, y, w = problem()

    def gradient(weights: np.ndarray) -> np.ndarray:  # of mean((x w - y)^2)
        return 2.0 / len(x) * x.T @ (x @ weights - y)

    g = gradient(w)
    return w - LEARNING_RATE * gradient(w + RHO * g / np.linalg.norm(g))


def keras_step(sam: bool) -> np.ndarray:
    """The weights after one full-batch SGD step in Keras, with or without SAM."""
    import keras

    from host_training.sam import enable_sam

    x, y, w = problem()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([w])
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse")
    if sam:
        enable_sam(model, RHO)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return model.layers[0].get_weights()[0]


if __name__ == "__main__":
    print(float(np.abs(keras_step(sam=True) - expected_sam_step()).max()))
