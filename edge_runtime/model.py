"""Loading an int8 .tflite with its model card, and scoring feature windows with it.

The card (JSON beside the model, same stem) is the contract between host and board: it holds
the model's sha256, the front-end parameters it was trained with, and its threshold. A model
without a matching card is refused, because features computed with other parameters would give
confident nonsense.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.errors import ModelError
from edge_runtime.frontend import FrontendConfig

CARD_FORMAT_VERSION = 1
# The shipped models and their cards: package data (pyproject ships every *.tflite and *.json
# here), so an installed wheel finds them; training writes its exports here too.
MODEL_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_NAME = "edge_detect.tflite"
DEFAULT_SPEECH_MODEL_NAME = "speech_gate.tflite"
# What a model's single output means, recorded on its card as "role". Cards written before the
# field existed are spoof detectors.
ROLE_SPOOF = "spoof"
ROLE_SPEECH = "speech_presence"

# Preference order: LiteRT is maintained and 4-5x faster here (XNNPACK int8 kernels);
# tflite_runtime stopped at 2.14; full TensorFlow is a last resort for hosts only.
INTERPRETER_MODULES = (
    "ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite",
)


# What LiteRT's C++ side prints on every successful load; not for the user's terminal.
BENIGN_NATIVE_LINES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
# Keep a native error message to one readable line.
MAX_DETAIL_CHARS = 200


def _detail(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= MAX_DETAIL_CHARS else line[: MAX_DETAIL_CHARS - 3] + "..."


def _shown(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", errors="replace")


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Points file descriptor 2 at a temporary file while native code runs, then restores it.

    The interpreter's C++ logging writes to fd 2 directly, past sys.stderr. The lines it wrote
    are left in the yielded list; the caller decides which are worth showing. If fd 2 is not
    open (a daemon started with 2>&-), nothing is redirected.
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield lines
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                lines.extend(sink.read().decode("utf-8", errors="replace").splitlines())
    finally:
        os.close(saved)


def default_model_path() -> Path:
    return MODEL_DIR / DEFAULT_MODEL_NAME


def default_speech_model_path() -> Path:
    return MODEL_DIR / DEFAULT_SPEECH_MODEL_NAME


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _sha256() -> Any:
    """A SHA-256 object from CPython's own implementation where it has one: hashlib would
    load OpenSSL's libcrypto, 3.6 MB of resident memory on the board, to hash one 100 KB
    file. Same digest either way."""
    for module_name in ("_sha2", "_sha256"):  # Python 3.12+, 3.11
        with contextlib.suppress(ImportError):
            return importlib.import_module(module_name).sha256()
    import hashlib

    return hashlib.sha256()


def sha256_of(path: Path) -> str:
    digest = _sha256()
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
            raise ModelError(
                f"{_shown(path)}: model card not found (every model needs its card)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{_shown(path)}: unreadable model card ({_detail(error)})") from None
        try:
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if raw.get("format_version") != CARD_FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {raw.get('format_version')!r}")
            known = {"format_version", "model_file", "sha256", "frontend", "input", "output",
                     "threshold"}
            card = cls(
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
            card.check()
            return card
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelError(f"{_shown(path)}: invalid model card ({_detail(error)})") from None

    def check(self) -> None:
        """Raises ValueError for values no exported model has, or a self-contradicting card."""
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise ValueError(f"threshold {self.threshold} is not a probability")
        for role, q in (("input", self.input_quantization), ("output", self.output_quantization)):
            if not (math.isfinite(q.scale) and q.scale > 0) or not -128 <= q.zero_point <= 127:
                raise ValueError(f"{role} quantisation {q} is not a valid int8 quantisation")
        # The card records the front end twice: the parameters the board uses, and the training
        # config they came from. Only shape-changing parameters can be checked against the
        # model itself, so a hand edit of the others (fmin, scale, normalisation...) is caught
        # here, where the two records disagree.
        training = self.extra.get("training")
        config = training.get("config") if isinstance(training, dict) else None
        recorded = config.get("frontend") if isinstance(config, dict) else None
        if isinstance(recorded, dict):
            trained = FrontendConfig.from_dict(recorded)
            if trained != self.frontend:
                changed = [name for name, value in self.frontend.to_dict().items()
                           if trained.to_dict()[name] != value]
                raise ValueError(
                    "front-end parameters differ from those the model was trained with: "
                    + ", ".join(f"{n} {getattr(self.frontend, n)!r} (trained "
                                f"{getattr(trained, n)!r})" for n in changed)
                )

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
        root = module_name.split(".")[0]
        # The package's own __version__ (ai_edge_litert, tflite_runtime and tensorflow all have
        # one): importlib.metadata would cost 0.04-0.14 s of cold start for an informative string.
        version = str(getattr(sys.modules[root], "__version__", "unknown"))
        return module.Interpreter, f"{root} {version}".strip()
    raise ModelError(
        "no TFLite interpreter installed: pip install ai-edge-litert (or tflite-runtime)"
    )


class Int8WindowModel:
    """An int8 TFLite model with its card: one feature window in, one probability out.

    Subclasses say what the probability means (``role``, checked against the card) and where
    the shipped model lives.
    """

    role = ROLE_SPOOF
    what = "model"

    @staticmethod
    def default_path() -> Path:
        return default_model_path()

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = None):
        self.path = Path(model_path) if model_path is not None else self.default_path()
        shown = _shown(self.path)
        if self.path.is_dir():
            raise ModelError(f"{shown}: is a directory, not a .tflite {self.what}")
        if not self.path.is_file():
            raise ModelError(f"{shown}: {self.what} file not found")
        self.card = ModelCard.from_json(card_path_for(self.path))
        role = self.card.extra.get("role", ROLE_SPOOF)
        if role != self.role:
            raise ModelError(
                f"{shown}: its card says it is a {role!r} model, not a {self.role!r} model "
                f"(wrong file for this option?)"
            )
        try:
            actual = sha256_of(self.path)
        except OSError as error:
            raise ModelError(f"{shown}: cannot read ({error.strerror or error})") from None
        if actual != self.card.sha256:
            raise ModelError(
                f"{shown}: sha256 {actual[:12]}... does not match its card "
                f"({self.card.sha256[:12]}...); the model or card was changed or swapped"
            )
        interpreter_type, self.interpreter_name = interpreter_class()
        # XNNPACK announces itself on fd 2 from C++ at allocation; classify and run print only
        # their own lines, so native output is held back and only unexpected lines are shown.
        with _native_stderr_captured() as native_lines:
            try:
                self._interpreter = interpreter_type(
                    model_path=str(self.path), num_threads=num_threads
                )
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                raise ModelError(
                    f"{shown}: not a loadable TFLite model ({_detail(error)})"
                ) from None
        for line in native_lines:
            if line.strip() and line.strip() not in BENIGN_NATIVE_LINES:
                print(line, file=sys.stderr)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_tensors()
        self.input_quantization = TensorQuantization(*self._input["quantization"])
        self.output_quantization = TensorQuantization(*self._output["quantization"])
        self._check_quantization()

    def _check_input_shape(self) -> None:
        expected = (1, *self.card.frontend.feature_shape, 1)
        shape = tuple(int(d) for d in self._input["shape"])
        if shape != expected:
            raise ModelError(f"{_shown(self.path)}: input shape {shape} does not match the "
                             f"card's front end {expected}")

    def _check_tensors(self) -> None:
        shown = _shown(self.path)
        self._check_input_shape()
        for role, detail in (("input", self._input), ("output", self._output)):
            if detail["dtype"] != np.int8:
                raise ModelError(
                    f"{shown}: {role} tensor is {np.dtype(detail['dtype']).name}, "
                    "expected int8 (export with full-integer quantisation)"
                )
        if int(np.prod(self._output["shape"])) != 1:
            raise ModelError(
                f"{shown}: output shape {tuple(int(d) for d in self._output['shape'])}; "
                "expected one probability"
            )

    def _check_quantization(self) -> None:
        """The card's quantisation must be the model's: it is what export measured it with."""
        for role, card_q, model_q in (
            ("input", self.card.input_quantization, self.input_quantization),
            ("output", self.card.output_quantization, self.output_quantization),
        ):
            if card_q.zero_point != model_q.zero_point or not math.isclose(
                card_q.scale, model_q.scale, rel_tol=1e-6
            ):
                raise ModelError(
                    f"{_shown(self.path)}: {role} quantisation (scale {model_q.scale:.6g}, "
                    f"zero point {model_q.zero_point}) does not match its card "
                    f"(scale {card_q.scale:.6g}, zero point {card_q.zero_point})"
                )

    @property
    def frontend_config(self) -> FrontendConfig:
        return self.card.frontend

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def score_window(self, features: np.ndarray) -> float:
        """The probability (spoof, or speech for the gate) of one (frames, bands) window."""
        quantized = self.input_quantization.quantize(features)[None, :, :, None]
        self._interpreter.set_tensor(self._input["index"], quantized)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])
        return float(self.output_quantization.dequantize(raw).reshape(-1)[0])

    def score_windows(self, features: np.ndarray) -> np.ndarray:
        """Probabilities of a batch (n, frames, bands)."""
        return np.array([self.score_window(f) for f in features], dtype=np.float32)


class SpoofModel(Int8WindowModel):
    """An int8 TFLite spoof detector: feature windows in, spoof probabilities out."""

    role = ROLE_SPOOF
    what = "model"


class SpeechModel(Int8WindowModel):
    """The int8 speech gate: feature windows in, the probability that they hold speech out.

    Its card's threshold is the speech threshold: a clip or utterance whose mean speech
    probability is below it is "no speech", whatever the spoof detector says.
    """

    role = ROLE_SPEECH
    what = "speech gate"

    @staticmethod
    def default_path() -> Path:
        return default_speech_model_path()
