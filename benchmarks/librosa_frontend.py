"""Child of benchmarks/suite.py: our front end vs librosa computing the same features.

librosa gets the parameters of the model card's front end (Slaney mel, no centre padding,
power spectrum, 10*log10 with the same floor, window-mean normalisation), the outputs are
checked to agree, and both are timed in this one process with their calls interleaved, so the
ratio is not skewed by load changing between two runs on a shared machine.
Prints one JSON object on stdout.

Usage:
    python benchmarks/librosa_frontend.py --card edge_runtime/models/edge_detect.json \\
        [--repeat 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--card", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()

    import librosa
    import numpy as np

    from edge_runtime.bench import latency_stats, speech_like
    from edge_runtime.frontend import Frontend, filterbank
    from edge_runtime.model import ModelCard

    config = ModelCard.from_json(args.card).frontend
    # librosa's STFT cannot remove each frame's mean before the window, so both sides compute
    # the card's features without that step (ours costs about 0.1 ms more with it).
    config = dataclasses.replace(config, remove_frame_dc=False)
    frontend = Frontend(config)
    # librosa has no linear-band filterbank: for scale "linear" it computes the power STFT and
    # the same triangular filters (ours) are applied to it, so the work compared is the same.
    linear_filters = filterbank(config).T
    window = speech_like(config.window_seconds, config.sample_rate, seed=2)[
        : config.window_samples]

    def with_librosa() -> np.ndarray:
        if config.scale == "linear":
            power = np.abs(librosa.stft(
                window, n_fft=config.n_fft, hop_length=config.hop_length,
                win_length=config.win_length, window="hann", center=False)) ** 2
            mel = linear_filters @ power
        else:
            mel = librosa.feature.melspectrogram(
                y=window, sr=config.sample_rate, n_fft=config.n_fft,
                hop_length=config.hop_length, win_length=config.win_length, window="hann",
                center=False, power=2.0, n_mels=config.n_bands, fmin=config.fmin,
                fmax=config.fmax, htk=False, norm="slaney")
        logs = 10.0 * np.log10(np.maximum(mel.T, config.log_floor))
        if config.normalization == "window_mean":
            logs = logs - logs.mean()
        return logs.astype(np.float32)

    ours = frontend.window_features(window)
    theirs = with_librosa()
    if ours.shape != theirs.shape:
        raise SystemExit(f"shapes differ: ours {ours.shape}, librosa {theirs.shape}")
    # Quiet bands sit at the log floor in one and just above it in the other, so compare
    # where the signal is (within 60 dB of the window's peak band energy).
    loud = theirs > theirs.max() - 60.0
    max_diff_db = float(np.abs(ours - theirs)[loud].max())

    for _ in range(args.warmup):
        frontend.window_features(window)
        with_librosa()
    ours_s, librosa_s = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        frontend.window_features(window)
        middle = time.perf_counter()
        with_librosa()
        librosa_s.append(time.perf_counter() - middle)
        ours_s.append(middle - start)
    print(json.dumps({
        "librosa": librosa.__version__,
        "max_abs_difference_db": max_diff_db,
        "compared_fraction": float(loud.mean()),
        "ours_ms": latency_stats(ours_s),
        "librosa_ms": latency_stats(librosa_s),
    }))


if __name__ == "__main__":
    main()
