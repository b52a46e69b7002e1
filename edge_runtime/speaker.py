"""The speaker embedder (``models/speaker_embedder.tflite`` and its card): a clip in, a unit
vector out; two clips of one voice point the same way.

Loaded through the same checks as the detector (card beside the model, sha256, front end,
input and output quantisation). Its weights are int8; its activations are float32 (see
``models/speaker_embedder.md`` for why this LSTM cannot run full int8 without losing the
voice). The card's ``threshold`` is the speaker score (``edge_runtime.speaker_score``: the
cosine normalised against the card's cohort of voices) at which a clip counts as the enrolled
speaker's, set on the corpus's non-target trials at the card's ``threshold_far``; an owner may
carry a threshold of their own (``edge_runtime.owners``). The card's ``sasv`` block holds the
spoof threshold that owner decisions use with one detector (named by its sha256).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edge_runtime.clip import has_signal
from edge_runtime.errors import AudioError, ModelError
from edge_runtime.model import MODEL_DIR, Int8WindowModel, _shown
from edge_runtime.speaker_frontend import SpeakerFrontend, SpeakerFrontendConfig
from edge_runtime.speaker_score import SpeakerScorer

ROLE_SPEAKER = "speaker_embedding"
DEFAULT_SPEAKER_MODEL_NAME = "speaker_embedder.tflite"


def default_speaker_model_path() -> Path:
    return MODEL_DIR / DEFAULT_SPEAKER_MODEL_NAME


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32); the zero vector cannot be, and is refused."""
    vector = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("an embedding of length zero has no direction")
    return (vector / norm).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1 = same direction)."""
    return float(np.dot(unit(a), unit(b)))


class SpeakerEmbedder(Int8WindowModel):
    """Clips in, L2-normalised speaker embeddings out (mean over the clip's 1.6 s partials)."""

    role = ROLE_SPEAKER
    what = "speaker embedder"

    @staticmethod
    def default_path() -> Path:
        return default_speaker_model_path()

    def __init__(self, model_path: str | Path | None = None,
                 num_threads: int | None = None) -> None:
        super().__init__(model_path, num_threads=num_threads)
        try:
            speaker = SpeakerFrontendConfig.from_dict(self.card.extra.get("speaker_frontend", {}))
        except (TypeError, ValueError) as error:
            raise ModelError(f"{_shown(self.path)}: invalid speaker_frontend on its card "
                             f"({error})") from None
        self.frontend = SpeakerFrontend(self.card.frontend, speaker)
        self.scorer = SpeakerScorer.from_card(self.path, self.card.extra, self.embedding_size)

    @property
    def threshold(self) -> float:
        """The card's speaker threshold on this embedder's score scale (``scorer.scale``):
        its ``score_normalisation.threshold`` with a cohort, else its cosine ``threshold``."""
        if self.scorer.cohort is None:
            return self.card.threshold
        try:
            value = float(self.card.extra["score_normalisation"]["threshold"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{_shown(self.path)}: its card's score_normalisation needs a "
                             "numeric threshold") from None
        if not math.isfinite(value):
            raise ModelError(f"{_shown(self.path)}: speaker threshold {value} is not finite")
        return value

    def owner_spoof_threshold(self, detector_sha256: str) -> float | None:
        """The spoof threshold for owner decisions with this detector (the card's ``sasv``
        block, calibrated on the SASV trials), or None: the detector's own threshold holds."""
        sasv = self.card.extra.get("sasv")
        if not isinstance(sasv, dict) or sasv.get("detector_sha256") != detector_sha256:
            return None
        try:
            value = float(sasv["spoof_threshold"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{_shown(self.path)}: its card's sasv block needs a numeric "
                             "spoof_threshold") from None
        if not 0.0 < value < 1.0:
            raise ModelError(f"{_shown(self.path)}: sasv spoof_threshold {value} is not a "
                             "probability")
        return value

    def _check_tensors(self) -> None:
        shown = _shown(self.path)
        self._check_input_shape()
        for role, detail in (("input", self._input), ("output", self._output)):
            if detail["dtype"] not in (np.int8, np.float32):
                raise ModelError(f"{shown}: {role} tensor is "
                                 f"{np.dtype(detail['dtype']).name}, expected int8 or float32")
        if len(self._output["shape"]) != 2 or int(self._output["shape"][1]) < 2:
            raise ModelError(f"{shown}: output shape "
                             f"{tuple(int(d) for d in self._output['shape'])}; expected "
                             "(1, embedding size)")

    def _check_quantization(self) -> None:
        """int8 tensors: the card's quantisation must be the model's. float32 tensors (int8
        weights, float activations): the card must say identity (scale 1, zero point 0)."""
        for role, detail, card_q in (
                ("input", self._input, self.card.input_quantization),
                ("output", self._output, self.card.output_quantization)):
            if detail["dtype"] == np.float32 and (card_q.scale != 1.0 or card_q.zero_point):
                raise ModelError(f"{_shown(self.path)}: {role} tensor is float32 but its card "
                                 "gives an int8 quantisation")
        if self._input["dtype"] == np.int8 and self._output["dtype"] == np.int8:
            super()._check_quantization()

    @property
    def embedding_size(self) -> int:
        return int(self._output["shape"][1])

    def embed_partial(self, features: np.ndarray) -> np.ndarray:
        """The raw (not normalised) embedding of one (frames, bands) partial."""
        if self._input["dtype"] == np.int8:
            data = self.input_quantization.quantize(features)[None, :, :, None]
        else:
            data = np.asarray(features, dtype=np.float32)[None, :, :, None]
        self._interpreter.set_tensor(self._input["index"], data)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])
        if self._output["dtype"] == np.int8:
            return self.output_quantization.dequantize(raw).reshape(-1)
        return np.array(raw, dtype=np.float32).reshape(-1)

    def embed(self, audio: np.ndarray, name: str = "audio") -> np.ndarray:
        """The unit embedding of a clip (mono float32 at the card's rate)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0 or not has_signal(audio):
            # The model describes even silence (its biases), as some voice: refuse instead.
            raise AudioError(f"{name}: no voice the speaker embedder can describe (no signal)")
        partials = self.frontend.partials(audio)
        vectors = []
        for partial in partials:
            vector = self.embed_partial(partial)
            norm = float(np.linalg.norm(vector))
            if norm > 0.0:
                vectors.append(vector / norm)
        if not vectors:
            raise AudioError(f"{name}: no voice the speaker embedder can describe")
        return unit(np.mean(vectors, axis=0))
