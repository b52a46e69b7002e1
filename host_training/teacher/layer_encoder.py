"""Every layer of Whisper's encoder: a NumPy reference, and the fast CTranslate2 stack.

CTranslate2's encode() returns the final layer only, and published work (Pascu et al. 2024)
finds intermediate layers of pretrained speech encoders generalise better to unseen
generators. Layer k's states are the residual stream after k blocks (k = 0: the convolutional
front end with positions) passed through the encoder's final layer norm.

- NumpyLayers reads model.bin (ct2_weights) and follows Whisper's encoder in float32:
  GELU(conv1), GELU(conv2, stride 2), + sinusoidal positions, 4 pre-norm blocks (6-head
  self-attention, 1536-unit GELU MLP), final layer norm. It equals ctranslate2's float32
  encode() on the last layer (max difference ~1e-4) and is the reference in the tests, but
  costs ~9x the CPU of the stack below.
- LayerStack: CTranslate2 builds as many encoder blocks as model.bin holds, so a copy of
  model.bin cut to its first k blocks returns layer k (through the final norm). Four cut
  models run int8 (cosine 0.9987-0.9997 to the float reference per frame); layer 0, the
  convolutional front end, comes from NumpyLayers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import erf

from host_training.teacher.ct2_weights import Ct2Model, read_model, write_model

LAYER_NORM_EPSILON = 1e-5
PREFIX = "encoder/"


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0, dtype=np.float32)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPSILON) * gamma + beta


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """(channels, frames) -> (out, frames / stride), kernel 3, padding 1, as im2col."""
    out_channels, in_channels, width = weight.shape
    padded = np.pad(x, ((0, 0), (1, 1)))
    n_out = (padded.shape[1] - width) // stride + 1
    columns = np.stack([padded[:, k:k + stride * (n_out - 1) + 1:stride] for k in range(width)],
                       axis=1)  # (in, width, n_out), matching weight's (out, in, width)
    return weight.reshape(out_channels, in_channels * width) @ columns.reshape(-1, n_out) \
        + bias[:, None]


class NumpyLayers:
    """(80, frames) log-mel -> (blocks + 1, frames / 2, 384) states of every layer."""

    def __init__(self, model: Ct2Model | Path) -> None:
        if not isinstance(model, Ct2Model):
            model = read_model(model)
        self.w = {name[len(PREFIX):]: np.asarray(value, dtype=np.float32)
                  for name, value in model.variables.items()
                  if name.startswith(PREFIX) and value.dtype.kind == "f"}
        self.heads = int(model.variables[PREFIX + "num_heads"])
        self.n_layers = sum(1 for name in self.w if name.endswith("self_attention/linear_0/weight"))

    def _block(self, x: np.ndarray, index: int) -> np.ndarray:
        w = {k[len(f"layer_{index}/"):]: v for k, v in self.w.items()
             if k.startswith(f"layer_{index}/")}
        frames, width = x.shape
        h = _layer_norm(x, w["self_attention/layer_norm/gamma"],
                        w["self_attention/layer_norm/beta"])
        qkv = h @ w["self_attention/linear_0/weight"].T + w["self_attention/linear_0/bias"]
        q, k, v = (part.reshape(frames, self.heads, -1).transpose(1, 0, 2)
                   for part in np.split(qkv, 3, axis=1))
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1], dtype=np.float32)
        logits -= logits.max(axis=-1, keepdims=True)
        attention = np.exp(logits)
        attention /= attention.sum(axis=-1, keepdims=True)
        mixed = (attention @ v).transpose(1, 0, 2).reshape(frames, width)
        x = x + mixed @ w["self_attention/linear_1/weight"].T + w["self_attention/linear_1/bias"]
        h = _layer_norm(x, w["ffn/layer_norm/gamma"], w["ffn/layer_norm/beta"])
        h = _gelu(h @ w["ffn/linear_0/weight"].T + w["ffn/linear_0/bias"])
        return x + h @ w["ffn/linear_1/weight"].T + w["ffn/linear_1/bias"]

    def _front_end(self, mel: np.ndarray) -> np.ndarray:
        x = _gelu(_conv1d(np.asarray(mel, np.float32), self.w["conv1/weight"],
                          self.w["conv1/bias"], 1))
        x = _gelu(_conv1d(x, self.w["conv2/weight"], self.w["conv2/bias"], 2)).T
        return x + self.w["position_encodings/encodings"][:len(x)]

    def _final_norm(self, x: np.ndarray) -> np.ndarray:
        return _layer_norm(x, self.w["layer_norm/gamma"], self.w["layer_norm/beta"])

    def layer_zero(self, mel: np.ndarray) -> np.ndarray:
        return self._final_norm(self._front_end(mel)).astype(np.float32)

    def all_layers(self, mel: np.ndarray) -> np.ndarray:
        states = [self._front_end(mel)]
        for index in range(self.n_layers):
            states.append(self._block(states[-1], index))
        return np.stack([self._final_norm(s) for s in states]).astype(np.float32)


CUT_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cut_model(source: Path, blocks: int, target: Path) -> Path:
    """A copy of the CTranslate2 Whisper model in ``source`` keeping encoder blocks
    0 .. blocks - 1 (the decoder stays: the Whisper class needs it). Built once."""
    if (target / "model.bin").is_file():
        return target
    model = read_model(source / "model.bin")
    n_blocks = sum(1 for n in model.variables if n.endswith("self_attention/linear_0/weight")
                   and n.startswith(PREFIX))
    if not 1 <= blocks <= n_blocks:
        raise ValueError(f"blocks must be 1..{n_blocks}, got {blocks}")
    dropped = tuple(f"{PREFIX}layer_{i}/" for i in range(blocks, n_blocks))
    model.variables = {n: v for n, v in model.variables.items() if not n.startswith(dropped)}
    target.mkdir(parents=True, exist_ok=True)
    for name in CUT_MODEL_FILES:
        (target / name).write_bytes((source / name).read_bytes())
    write_model(model, target / "model.bin")  # last: its presence marks a complete copy
    return target


class LayerStack:
    """Every layer's states, fast: layer 0 from NumPy, layers 1.. from cut CTranslate2 models.
    Same call as NumpyLayers.all_layers."""

    def __init__(self, source: Path, work_dir: Path, threads: int = 2,
                 compute_type: str = "int8") -> None:
        from host_training.teacher.encoder import RUNTIME_PACKAGE, import_or_explain

        self._ct2 = import_or_explain("ctranslate2", RUNTIME_PACKAGE)
        self._reference = NumpyLayers(Path(source) / "model.bin")
        self._models = [
            self._ct2.models.Whisper(
                str(cut_model(Path(source), k, Path(work_dir) / f"whisper-first-{k}")),
                device="cpu", compute_type=compute_type, intra_threads=threads)
            for k in range(1, self._reference.n_layers + 1)]

    def all_layers(self, mel: np.ndarray) -> np.ndarray:
        view = self._ct2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
        deeper = [np.array(m.encode(view, to_cpu=True))[0] for m in self._models]
        return np.stack([self._reference.layer_zero(mel), *deeper]).astype(np.float32)
