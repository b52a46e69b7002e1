"""Resemblyzer's GE2E speaker encoder (PyPI ``resemblyzer`` 0.1.4, Apache-2.0): its weights as
NumPy arrays, and a float reference forward pass in NumPy.

The encoder: 3 LSTM layers of 256 units over 40 mel power bands, the last layer's final hidden
state through Linear(256, 256) and ReLU; the utterance embedding is the L2-normalised mean of
its L2-normalised partial embeddings. The weights ship inside the wheel (``pretrained.pt``);
reading them needs torch, host side only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYERS = 3
UNITS = 256
EMBEDDING_SIZE = 256


def checkpoint_path() -> Path:
    try:
        import resemblyzer  # host only: the wheel carries the weights
    except ImportError:
        raise SystemExit("the speaker embedder's weights come from the resemblyzer wheel: "
                         "pip install --no-deps resemblyzer==0.1.4 (and torch==2.13.0)") from None
    return Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"


def load_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """PyTorch's names -> float32 arrays (LSTM gates in PyTorch order i, f, g, o)."""
    import torch

    state = torch.load(path or checkpoint_path(), map_location="cpu")["model_state"]
    return {name: value.numpy().astype(np.float32) for name, value in state.items()
            if name.startswith(("lstm.", "linear."))}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_embeddings(weights: dict[str, np.ndarray], partials: np.ndarray) -> np.ndarray:
    """Float forward pass: (n, frames, 40) mel power -> (n, 256) ReLU outputs (not normalised)."""
    sequence = partials.astype(np.float64)
    for layer in range(LAYERS):
        w_ih = weights[f"lstm.weight_ih_l{layer}"].astype(np.float64)
        w_hh = weights[f"lstm.weight_hh_l{layer}"].astype(np.float64)
        bias = (weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]).astype(
            np.float64)
        projected = sequence @ w_ih.T + bias
        h = np.zeros((partials.shape[0], UNITS))
        c = np.zeros_like(h)
        outputs = []
        for t in range(partials.shape[1]):
            z = projected[:, t] + h @ w_hh.T
            i, f, g, o = np.split(z, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            outputs.append(h)
        sequence = np.stack(outputs, axis=1)
    linear = h @ weights["linear.weight"].T.astype(np.float64) + weights["linear.bias"]
    return np.maximum(linear, 0.0).astype(np.float32)
