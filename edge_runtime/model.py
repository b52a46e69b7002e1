"""Loading an int8 .tflite with its model card, and scoring feature windows with it.

The card (JSON beside the model, same stem) is the contract between host and board: it holds
the model's sha256, the front-end parameters it was trained with, and its threshold. A model
without a matching card is refused, because features computed with other parameters would give
confident nonsense.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.frontend import FrontendConfig

CARD_FORMAT_VERSION = 1
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL_NAME = "edge_detect.tflite"

# Preference order: LiteRT is maintained and 4-5x faster here (XNNPACK int8 kernels);
# tflite_runtime stopped at 2.14; full TensorFlow is a last resort for hosts only.
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


def default_model_path() -> Path:
    return DEFAULT_MODEL_DIR / DEFAULT_MODEL_NAME


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorQuantization:
    scale: float
    zero_point: int

    def quantize(self, values: np.ndarray) -> np.ndarray:
        scaled = np.round(values / self.scale) + self.zero_point
        return np.clip(scaled, -128, 127).astype(np.int8)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        return (values.astype(np.float32) - self.zero_point) * self.scale


@dataclass(frozen=True)
class ModelCard:
    """What the board needs to know about a model, and what training measured of it."""

    model_file: str
    sha256: str
    frontend: FrontendConfig
    input_quantization: TensorQuantization
    output_quantization: TensorQuantization
    threshold: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path) -> ModelCard:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{path}: model card not found (every model needs its card)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: unreadable model card ({error})") from None
        try:
            if raw.get("format_version") != CARD_FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {raw.get('format_version')!r}")
            known = {"format_version", "model_file", "sha256", "frontend", "input", "output",
                     "threshold"}
            return cls(
                model_file=str(raw["model_file"]),
                sha256=str(raw["sha256"]),
                frontend=FrontendConfig.from_dict(raw["frontend"]),
                input_quantization=TensorQuantization(
                    float(raw["input"]["scale"]), int(raw["input"]["zero_point"])
                ),
                output_quantization=TensorQuantization(
                    float(raw["output"]["scale"]), int(raw["output"]["zero_point"])
                ),
                threshold=float(raw["threshold"]),
                extra={k: v for k, v in raw.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelError(f"{path}: invalid model card ({error!s})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": CARD_FORMAT_VERSION,
            "model_file": self.model_file,
            "sha256": self.sha256,
            "frontend": self.frontend.to_dict(),
            "input": {"scale": self.input_quantization.scale,
                      "zero_point": self.input_quantization.zero_point,
                      "dtype": "int8", "shape": [1, *self.frontend.feature_shape, 1]},
            "output": {"scale": self.output_quantization.scale,
                       "zero_point": self.output_quantization.zero_point, "dtype": "int8"},
            "threshold": self.threshold,
            **self.extra,
        }


def interpreter_class() -> tuple[type, str]:
    """The first TFLite interpreter that imports, and a name for it."""
    for module_name in INTERPRETER_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        version = ""
        root = module_name.split(".")[0]
        try:
            from importlib.metadata import version as dist_version

            dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
                    "tensorflow": "tensorflow"}[root]
            version = dist_version(dist) if root != "tensorflow" else module.__name__
        except Exception:  # noqa: BLE001 - a version string is informative only
            version = "unknown"
        return module.Interpreter, f"{root} {version}".strip()
    raise ModelError(
        "no TFLite interpreter installed: pip install ai-edge-litert (or tflite-runtime)"
    )


class SpoofModel:
    """An int8 TFLite spoof detector: feature windows in, spoof probabilities out."""

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = None):
        self.path = Path(model_path) if model_path is not None else default_model_path()
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        self.card = ModelCard.from_json(card_path_for(self.path))
        actual = sha256_of(self.path)
        if actual != self.card.sha256:
            raise ModelError(
                f"{self.path}: sha256 {actual[:12]}... does not match its card "
                f"({self.card.sha256[:12]}...); the model or card was changed or swapped"
            )
        interpreter_type, self.interpreter_name = interpreter_class()
        try:
            self._interpreter = interpreter_type(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{self.path}: not a loadable TFLite model ({error})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_tensors()
        self.input_quantization = TensorQuantization(*self._input["quantization"])
        self.output_quantization = TensorQuantization(*self._output["quantization"])

    def _check_tensors(self) -> None:
        expected = (1, *self.card.frontend.feature_shape, 1)
        shape = tuple(int(d) for d in self._input["shape"])
        if shape != expected:
            raise ModelError(
                f"{self.path}: input shape {shape} does not match the card's front end {expected}"
            )
        for role, detail in (("input", self._input), ("output", self._output)):
            if detail["dtype"] != np.int8:
                raise ModelError(
                    f"{self.path}: {role} tensor is {np.dtype(detail['dtype']).name}, "
                    "expected int8 (export with full-integer quantisation)"
                )

    @property
    def frontend_config(self) -> FrontendConfig:
        return self.card.frontend

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def score_window(self, features: np.ndarray) -> float:
        """Spoof probability of one (frames, bands) feature window."""
        quantized = self.input_quantization.quantize(features)[None, :, :, None]
        self._interpreter.set_tensor(self._input["index"], quantized)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])
        return float(self.output_quantization.dequantize(raw).reshape(-1)[0])

    def score_windows(self, features: np.ndarray) -> np.ndarray:
        """Spoof probabilities of a batch (n, frames, bands)."""
        return np.array([self.score_window(f) for f in features], dtype=np.float32)
