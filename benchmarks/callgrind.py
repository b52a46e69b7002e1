"""Noise-free regression figures: instructions per window under valgrind's callgrind.

Wall-clock latency on a shared 2-core machine moves by tens of percent with the load; the number
of instructions executed does not. Counts per window, each over N calls in one process
(the window counts, without and with the speech gate, toggle on ffi_call as the front end's):

- invoke: collection toggled on ``tflite::interpreter_wrapper::InterpreterWrapper::Invoke*``
  (the C++ function behind ``Interpreter.invoke()`` in LiteRT's libpywrap_litert_common.so;
  checked with ``nm | c++filt``), one interpreter thread;
- front end: ``Frontend.window_features`` is called through a ctypes callback, so collection can
  be toggled on libffi's ``ffi_call``, which nothing else in the process calls meanwhile. This
  count includes the Python interpreter's own work inside the front end.
- whole clips: a 30 s clip through ``ClipScorer`` (as classify) and ``LiveDetector`` (as run,
  0.5 s hop), each without and with the speech gate on its schedule, through the same callback.

valgrind reports its own CPU model to the guest, so XNNPACK picks the kernels valgrind's CPU
supports (AVX2 here, not AVX-512): compare counts from the same valgrind and host only.

Usage: python benchmarks/callgrind.py [--model M] [--windows 5]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INVOKE_SYMBOL = "tflite::interpreter_wrapper::InterpreterWrapper::Invoke*"
FRONTEND_SYMBOL = "ffi_call"

_CHILD = r"""
import ctypes, sys
import numpy as np
from edge_runtime.bench import speech_like
from edge_runtime.frontend import Frontend
from edge_runtime.model import SpoofModel
model = SpoofModel(sys.argv[1] or None, num_threads=1)
frontend = Frontend(model.frontend_config)
window = speech_like(model.frontend_config.window_seconds, model.frontend_config.sample_rate,
                     seed=2)[: model.frontend_config.window_samples]
features = frontend.window_features(window)
interpreter = model._interpreter
# Set the input without score_window: every call of the toggled Invoke is counted, so the
# only invokes in this process must be the measured ones.
interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                       model.input_quantization.quantize(features)[None, :, :, None])
windows = int(sys.argv[2])
if sys.argv[3] == "invoke":
    for _ in range(windows):
        interpreter.invoke()
else:
    if sys.argv[3] == "frontend":
        step = lambda: frontend.window_features(window)
    elif sys.argv[3] == "window":  # what classify does per window without the speech gate
        step = lambda: model.score_window(frontend.window_features(window))
    elif sys.argv[3] == "window+gate":  # one STFT, the gate's bands pooled from it, both models
        from edge_runtime.speech_presence import SpeechPresence
        gate = SpeechPresence.load(model.frontend_config, num_threads=1)
        gate.score_power(frontend.power_frames(window))
        def step():
            power = frontend.power_frames(window)
            gate.score_power(power)
            model.score_window(frontend.normalize(frontend.log_bands(power)))
    else:  # "clip", "clip+gate", "stream", "stream+gate": a whole clip as classify / run take it
        from edge_runtime.bench import CLIP_SECONDS
        from edge_runtime.clip import ClipScorer
        from edge_runtime.speech_presence import SpeechPresence
        from edge_runtime.stream import LiveDetector, SpeechGate
        config = model.frontend_config
        clip = speech_like(CLIP_SECONDS, config.sample_rate, seed=3)
        gate = (SpeechPresence.load(config, num_threads=1) if sys.argv[3].endswith("+gate")
                else None)
        if sys.argv[3].startswith("clip"):
            scorer = ClipScorer(model, speech=gate)
            step = lambda: scorer.score_audio(clip)
        else:
            def step():
                detector = LiveDetector(model, config, 0.5, speech=gate,
                                        gate=SpeechGate(config.sample_rate, kind="off"),
                                        max_utterance=2 * CLIP_SECONDS)
                detector.push(clip)
                detector.flush()
    step()  # first calls (allocations, kernel set-up) are not counted
    callback = ctypes.CFUNCTYPE(None)(step)
    for _ in range(windows):
        callback()
"""


def _totals(path: Path) -> int:
    """The Ir total of a callgrind output file (``totals:`` or ``summary:`` line)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^totals:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^summary:\s+(\d+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"{path}: no totals line in callgrind output")
    return int(match.group(1))


def count(model: str | None, windows: int, what: str) -> int:
    """Instructions executed inside the toggled function over ``windows`` calls."""
    symbol = INVOKE_SYMBOL if what == "invoke" else FRONTEND_SYMBOL  # the others: ffi_call
    with tempfile.TemporaryDirectory(prefix="edge-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
                   OPENBLAS_NUM_THREADS="1")
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--toggle-collect={symbol}",
             f"--callgrind-out-file={out}", sys.executable, "-c", _CHILD, model or "",
             str(windows), what],
            env=env, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            tail = done.stderr.strip().splitlines()[-3:]
            raise RuntimeError(f"valgrind failed ({done.returncode}): {' | '.join(tail)}")
        total = _totals(out)
    if total == 0:
        raise RuntimeError(f"callgrind counted nothing: symbol {symbol!r} never ran")
    return total


def measure(model: str | None = None, windows: int = 5) -> dict:
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (apt-get install valgrind)"}
    version = subprocess.run(["valgrind", "--version"], capture_output=True,
                             text=True).stdout.strip()
    invoke = count(model, windows, "invoke")
    frontend = count(model, windows, "frontend")
    window = count(model, windows, "window")
    gated = count(model, windows, "window+gate")
    # Whole 30 s clips (one call each), as classify and run score them, gate off and on (on its
    # schedule: every second window of classify, one window in eight of run at a 0.5 s hop).
    clips = {what: count(model, 1, what)
             for what in ("clip", "clip+gate", "stream", "stream+gate")}
    return {
        "valgrind": version,
        "windows": windows,
        "invoke_symbol": INVOKE_SYMBOL,
        "invoke_instructions_per_window": invoke / windows,
        "frontend_symbol": FRONTEND_SYMBOL,
        "frontend_instructions_per_window": frontend / windows,
        # Front end + detector per window as classify runs it, without and with the speech
        # gate (one STFT shared): the gate's cost, free of the load on the host.
        "window_instructions": window / windows,
        "window_with_gate_instructions": gated / windows,
        "gate_cost_ratio": gated / window,
        "clip_instructions": clips["clip"],
        "clip_with_gate_instructions": clips["clip+gate"],
        "clip_gate_cost_ratio": clips["clip+gate"] / clips["clip"],
        "stream_instructions": clips["stream"],
        "stream_with_gate_instructions": clips["stream+gate"],
        "stream_gate_cost_ratio": clips["stream+gate"] / clips["stream"],
        "interpreter_threads": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--windows", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, args.windows), indent=2))


if __name__ == "__main__":
    main()
