"""On-target latency and memory of the edge runtime, as a versioned JSON report.

Measured in the process that runs the model (stdlib + numpy + the edge runtime: no psutil, no
scipy, no TensorFlow), so its peak RSS is what a board pays:

- cold start: fresh processes from exec to the first score of a 4 s clip, and the whole
  ``edge-detect classify`` command on it;
- per window (min / p50 / p95 / p99 after warm-up): the batch front end, the bare interpreter
  invoke, the model call with (de)quantisation, and audio window -> score;
- streaming: 60 s of audio pushed hop by hop through ``StreamingFrontend`` with one
  ``score_window`` per hop (real-time factor = processing time / audio time);
- memory: peak RSS, model size, tensor bytes from the model graph; the device it ran on.

The report's schema is ``edge_runtime.bench_report``; ``edge_runtime.bench_compare`` turns
reports from several devices into one table and plot; ``edge_runtime.machine`` describes the
device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edge_runtime import __version__
from edge_runtime.bench_report import SCHEMA, SCHEMA_VERSION
from edge_runtime.defaults import DEFAULT_HOP_SECONDS, HOP_RANGE
from edge_runtime.errors import ConfigError
from edge_runtime.machine import current_rss_bytes, device_info, peak_rss_bytes, rss_breakdown_bytes

PACKAGE_ROOT = Path(__file__).resolve().parent.parent



@dataclass(frozen=True)
class BenchSettings:
    """How much to measure. The defaults take about 15 s on a 2-core x86 host."""

    warmup: int = 10
    repeat: int = 200
    cold_runs: int = 3
    stream_seconds: float = 60.0
    hop_seconds: float = DEFAULT_HOP_SECONDS

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeat < 1 or self.cold_runs < 0:
            raise ConfigError("need warmup >= 0, repeat >= 1 and cold runs >= 0")
        low, high = HOP_RANGE
        if not low <= self.hop_seconds <= high or self.stream_seconds <= 0:
            raise ConfigError(f"need {low} <= hop <= {high} s and a positive stream length")


class Progress:
    """One progress line on stderr, rewritten in place on a terminal, one line per phase else."""

    def __init__(self, stream: TextIO | None = sys.stderr, prefix: str = "bench") -> None:
        self.stream = stream
        self.prefix = prefix
        self.tty = bool(stream is not None and stream.isatty())
        self._last = ""

    def __call__(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        if self.stream is None:
            return
        if done is None or total is None:
            text = f"{self.prefix}: {phase}"
        else:
            text = f"{self.prefix}: {phase} {done}/{total}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        elif done is None or done == 0:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def done(self) -> None:
        if self.stream is not None and self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()


def latency_stats(seconds: Sequence[float]) -> dict[str, float | int]:
    """min / p50 / p95 / p99 / mean / max in milliseconds over the given durations."""
    if len(seconds) == 0:
        raise ValueError("no samples")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"count": int(ms.size), "min": float(ms.min()), "p50": float(p50),
            "p95": float(p95), "p99": float(p99), "mean": float(ms.mean()),
            "max": float(ms.max())}


def time_calls(fn: Callable[[], object], warmup: int, repeat: int,
               progress: Callable[[int, int], None] | None = None) -> list[float]:
    """Durations of ``repeat`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    durations = []
    step = max(1, repeat // 20)
    for index in range(repeat):
        start = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - start)
        if progress is not None and index % step == 0:
            progress(index, repeat)
    return durations


def _hash_noise(count: int, seed: int, start: int = 0) -> np.ndarray:
    """Uniform noise in [-1, 1) from a sine hash of the sample position: importing numpy.random
    would add about 7 MB to the very RSS this module measures."""
    n = np.arange(start, start + count, dtype=np.float64) + seed * 7919.0
    return (np.sin(n * 12.9898 + seed) * 43758.5453) % 1.0 * 2.0 - 1.0


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Deterministic voiced, syllable-modulated test audio (the timings do not depend on it,
    but silence could take shortcuts in log/normalisation code).

    Made one second at a time: float64 temporaries for a whole minute would add ~60 MB to the
    peak RSS of the process being measured.
    """
    total = round(seconds * rate)
    out = np.empty(total, dtype=np.float32)
    phase_offset = 0.0
    for start in range(0, total, rate):
        t = np.arange(start, min(total, start + rate)) / rate
        f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
        phase = phase_offset + 2 * np.pi * np.cumsum(f0) / rate
        phase_offset = float(phase[-1])
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5
        noise = _hash_noise(t.size, seed, start)
        out[start : start + t.size] = 0.2 * voiced * envelope + 0.01 * noise
    return out


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM WAV with the stdlib (no soundfile needed in the measuring process)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


# --- cold start -----------------------------------------------------------------------------

# Runs in a fresh interpreter: what `edge-detect classify` does for one 4 s clip, timed in
# CLOCK_MONOTONIC (system-wide on Linux, so the parent's launch time is comparable).
_COLD_CHILD = r"""
import time
t_main = time.monotonic()
import json, resource, sys
from edge_runtime.clip import ClipScorer
from edge_runtime.model import SpoofModel
t_imports = time.monotonic()
threads = int(sys.argv[2]) if sys.argv[2] else None
scorer = ClipScorer(SpoofModel(sys.argv[1] or None, num_threads=threads))
t_model = time.monotonic()
score = scorer.score_file(sys.argv[3]).score
t_score = time.monotonic()
print(json.dumps({"t_main": t_main, "t_imports": t_imports, "t_model": t_model,
                  "t_score": t_score, "score": score,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "scipy_imported": "scipy" in sys.modules,
                  "modules": len(sys.modules)}), flush=True)
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def measure_cold_start(model_path: Path | None, threads: int | None, runs: int, clip: Path,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Fresh processes: exec -> first score (with a breakdown), and the classify command."""
    firsts, starts, imports, loads, scores, cli = [], [], [], [], [], []
    child: dict[str, Any] = {}
    args = [str(model_path or ""), str(threads or ""), str(clip)]
    for run in range(runs):
        if progress:
            progress("cold start", run, runs)
        launched = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _COLD_CHILD, *args], env=_child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        answered = time.monotonic()
        _, err = proc.communicate()
        if proc.returncode != 0 or not line:
            tail = (err or "").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"cold-start child failed: {tail[0]}")
        child = json.loads(line)
        firsts.append(answered - launched)
        starts.append(child["t_main"] - launched)
        imports.append(child["t_imports"] - child["t_main"])
        loads.append(child["t_model"] - child["t_imports"])
        scores.append(child["t_score"] - child["t_model"])
        command = [sys.executable, "-m", "edge_runtime", "classify", str(clip)]
        if model_path:
            command += ["--model", str(model_path)]
        if threads:
            command += ["--threads", str(threads)]
        launched = time.monotonic()
        done = subprocess.run(command, env=_child_env(), capture_output=True, text=True)
        cli.append(time.monotonic() - launched)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"edge-detect classify failed: {done.stderr.strip()[-200:]}")

    def seconds(values: list[float]) -> dict[str, float | int]:
        stats = latency_stats(values)
        return {"runs": stats["count"], "min": stats["min"] / 1e3, "p50": stats["p50"] / 1e3,
                "max": stats["max"] / 1e3}

    return {
        "first_score_s": seconds(firsts),
        "breakdown_p50_s": {
            "python_start": float(np.median(starts)),
            "imports": float(np.median(imports)),
            "model_load": float(np.median(loads)),
            "read_and_score": float(np.median(scores)),
        },
        "cli_classify_s": seconds(cli),
        "child_peak_rss_bytes": int(child["maxrss_kb"]) * 1024,
        "child_scipy_imported": bool(child["scipy_imported"]),
        "child_modules": int(child["modules"]),
    }


# --- per-window and streaming -----------------------------------------------------------------

def measure_stream(model: Any, seconds: float, hop_seconds: float,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Audio pushed hop by hop through StreamingFrontend, one score per hop once ready."""
    from edge_runtime.stream import StreamingFrontend

    config = model.frontend_config
    audio = speech_like(seconds, config.sample_rate, seed=1)
    hop = max(1, round(hop_seconds * config.sample_rate))
    stream = StreamingFrontend(config)
    per_hop: list[float] = []
    scored = 0
    starts = range(0, audio.shape[0], hop)
    cpu_begin = time.process_time()
    begin = time.perf_counter()
    for index, start in enumerate(starts):
        tick = time.perf_counter()
        stream.push(audio[start : start + hop])
        if stream.ready:
            model.score_window(stream.window())
            scored += 1
        per_hop.append(time.perf_counter() - tick)
        if progress and index % 20 == 0:
            progress("streaming", index, len(starts))
    wall = time.perf_counter() - begin
    cpu = time.process_time() - cpu_begin
    audio_seconds = audio.shape[0] / config.sample_rate
    return {"audio_seconds": audio_seconds, "hop_seconds": hop / config.sample_rate,
            "hops": len(per_hop), "windows_scored": scored, "wall_seconds": wall,
            "rtf": wall / audio_seconds,
            # CPU seconds of all this process's threads: what the work costs, without the
            # waiting for a CPU that a loaded machine adds to the wall-clock figure.
            "cpu_seconds": cpu, "rtf_cpu": cpu / audio_seconds,
            "per_hop_ms": latency_stats(per_hop)}


def _random_input(detail: dict[str, Any], seed: int = 0) -> np.ndarray:
    shape = tuple(int(d) for d in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    noise = _hash_noise(int(np.prod(shape)), seed).reshape(shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.floor((noise + 1) / 2 * (int(info.max) - int(info.min) + 1) + info.min).clip(
            info.min, info.max).astype(dtype)
    return noise.astype(dtype)


def invoke_latencies(model_paths: Sequence[str | Path], threads: int | None, warmup: int,
                     repeat: int, block: int = 10,
                     interpreter_module: str | None = None) -> dict[str, Any]:
    """Bare invoke latency of several .tflite files (int8 or float) on inputs of their dtype.

    The models take turns in blocks of ``block`` calls, so load that comes and goes on a shared
    machine hits all of them alike and their ratios stay meaningful.
    """
    if interpreter_module is None:
        from edge_runtime.model import interpreter_class

        interpreter_type, name = interpreter_class()
    else:  # e.g. "tflite_runtime.interpreter", to compare interpreters on the same models
        import importlib

        interpreter_type = importlib.import_module(interpreter_module).Interpreter
        name = interpreter_module.split(".")[0]
    interpreters = []
    for path in model_paths:
        interpreter = interpreter_type(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(detail))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters.append(interpreter)
    durations: list[list[float]] = [[] for _ in interpreters]
    while len(durations[0]) < repeat:
        for interpreter, series in zip(interpreters, durations, strict=True):
            series.extend(time_calls(interpreter.invoke, 0, min(block, repeat - len(series))))
    return {
        "interpreter": name,
        "threads": threads,
        "models": {
            str(path): {"invoke_ms": latency_stats(series),
                        "size_bytes": Path(path).stat().st_size,
                        "input_dtype": np.dtype(it.get_input_details()[0]["dtype"]).name}
            for path, series, it in zip(model_paths, durations, interpreters, strict=True)
        },
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_bench(model_path: Path | None = None, threads: int | None = None,
              settings: BenchSettings | None = None, note: str | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Measures everything for one model and thread count; returns the report dict."""
    from edge_runtime.frontend import Frontend
    from edge_runtime.macs import read_graph
    from edge_runtime.model import SpoofModel

    settings = settings or BenchSettings()
    device = device_info()
    rss_after_imports = current_rss_bytes()
    if progress:
        progress("loading model")
    rss_before_model = current_rss_bytes()
    model = SpoofModel(model_path, num_threads=threads)
    config = model.frontend_config
    frontend = Frontend(config)
    window = speech_like(config.window_seconds, config.sample_rate, seed=2)[
        : config.window_samples]
    features = frontend.window_features(window)
    model.score_window(features)
    # What importing LiteRT, creating the interpreter, allocating its tensors, the first invoke
    # and the first front-end call (numpy's FFT module) added to RSS: the measured upper bound
    # of what the model costs in memory, beside the graph's own tensor figures.
    rss_after_model = current_rss_bytes()
    graph = read_graph(model.path)

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        clip = Path(tmp) / "window.wav"
        write_wav(clip, window, config.sample_rate)
        cold = (measure_cold_start(model_path, threads, settings.cold_runs, clip, progress)
                if settings.cold_runs else None)

    def phase(name: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(name, done, total)) if progress else None

    latency = {
        "frontend": latency_stats(time_calls(lambda: frontend.window_features(window),
                                             settings.warmup, settings.repeat, phase("front end"))),
    }
    model.score_window(features)  # leaves the quantised input in place for bare invokes
    # SpoofModel has no public handle on its interpreter; timing invoke() alone separates the
    # kernels from the (de)quantisation that score_window adds around it.
    interpreter = model._interpreter
    latency["invoke"] = latency_stats(time_calls(interpreter.invoke, settings.warmup,
                                                 settings.repeat, phase("invoke")))
    latency["model"] = latency_stats(time_calls(lambda: model.score_window(features),
                                                settings.warmup, settings.repeat,
                                                phase("score_window")))
    latency["end_to_end"] = latency_stats(time_calls(
        lambda: model.score_window(frontend.window_features(window)),
        settings.warmup, settings.repeat, phase("end to end")))
    gate_report = _measure_speech_gate(model, frontend, window, latency, settings, phase,
                                      threads)
    stream = measure_stream(model, settings.stream_seconds, settings.hop_seconds, progress)

    invoke_s = latency["invoke"]["p50"] / 1e3
    achieved = graph.macs / invoke_s if invoke_s > 0 else None
    active_threads = threads or 1
    per_cycle = (achieved / (device["cpu_mhz"] * 1e6 * active_threads)
                 if achieved and device["cpu_mhz"] else None)
    report = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "edge_detect_version": __version__,
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "note": note,
        "device": {**device, "interpreter": model.interpreter_name},
        "settings": {**asdict(settings), "threads": threads},
        "model": {
            "path": str(model.path),
            "sha256": model.card.sha256,
            "name": model.card.extra.get("name"),
            "size_bytes": model.path.stat().st_size,
            "input_shape": [1, *config.feature_shape, 1],
            "input_dtype": "int8",
            "constant_bytes": graph.constant_bytes,
            "activation_bytes_sum": graph.activation_bytes,
            "peak_live_activation_bytes": graph.peak_live_activation_bytes,
            "ops": len(graph.ops),
        },
        "cold_start": cold,
        "latency_ms": latency,
        "speech_gate": gate_report,
        "stream": stream,
        "memory": {
            "peak_rss_bytes": peak_rss_bytes(),
            "rss_after_imports_bytes": rss_after_imports,
            "rss_at_end_bytes": rss_breakdown_bytes(),
            "model_load_rss_delta_bytes": (rss_after_model - rss_before_model
                                           if rss_after_model and rss_before_model else None),
            "scipy_imported": "scipy" in sys.modules,
            "tensorflow_imported": "tensorflow" in sys.modules,
        },
        "compute": {
            "macs_per_window": graph.macs,
            "macs_by_op": graph.macs_by_op,
            "achieved_macs_per_s": achieved,
            "macs_per_cycle_per_thread": per_cycle,
        },
    }
    if progress:
        progress.done()
    return report


def _alternate(sides: dict[str, Callable[[], Any]], repeat: int, report: Any = None
               ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and thread-CPU seconds of each side, called in turn, the order flipping each round,
    so a load change on a shared machine hits every side alike; the CPU time is kept beside
    the wall clock, since on a loaded host the wall clock also counts the time other processes
    held the core."""
    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides.items())
    for index in range(repeat):
        for name, fn in order if index % 2 == 0 else order[::-1]:
            cpu, wall = time.thread_time(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.thread_time() - cpu)
        if report is not None and index % max(1, repeat // 20) == 0:
            report(index, repeat)
    return walls, cpus


def _ratios(walls: dict[str, list[float]], cpus: dict[str, list[float]], per: float = 1.0
            ) -> dict[str, float]:
    """Gate on / gate off at p50, at the minimum and in CPU time (``per``: windows a call
    scores, for the per-window milliseconds)."""
    on, off = latency_stats(walls["gated"]), latency_stats(walls["alone"])
    cpu_on, cpu_off = latency_stats(cpus["gated"]), latency_stats(cpus["alone"])
    return {
        "alone_p50_ms": off["p50"] / per, "alone_min_ms": off["min"] / per,
        "with_gate_p50_ms": on["p50"] / per, "with_gate_min_ms": on["min"] / per,
        "cost_ratio": on["p50"] / off["p50"], "cost_ratio_min": on["min"] / off["min"],
        "cost_ratio_cpu": cpu_on["p50"] / cpu_off["p50"],
    }


CLIP_SECONDS = 30.0  # the clip classify scores in the gate's end-to-end measurement


def _measure_speech_gate(model: Any, frontend: Any, window: np.ndarray,
                         latency: dict[str, Any], settings: BenchSettings,
                         phase: Callable[[str], Any], threads: int | None = None
                         ) -> dict[str, Any] | None:
    """What the speech gate costs, gate on against gate off, each pair timed side by side:

    - ``every_window``: one window with the gate (one STFT, two models) against the detector's
      window alone: the gate's cost where it judges every window;
    - ``clip`` (the headline): a 30 s clip through ``ClipScorer`` as ``classify`` scores it,
      the gate on its schedule (every second window there), per window;
    - ``stream``: the same audio through ``LiveDetector`` as ``run`` scores it (hop from the
      settings), per scored window.

    None if the shipped gate is not there."""
    from edge_runtime.clip import ClipScorer
    from edge_runtime.errors import ModelError
    from edge_runtime.macs import read_graph
    from edge_runtime.speech_presence import SpeechPresence, gate_stride
    from edge_runtime.stream import LiveDetector, SpeechGate

    try:
        gate = SpeechPresence.load(model.frontend_config, num_threads=threads)
    except ModelError:
        return None

    def alone() -> None:
        model.score_window(frontend.window_features(window))

    def both() -> None:
        power = frontend.power_frames(window)
        gate.score_power(power)
        model.score_window(frontend.normalize(frontend.log_bands(power)))

    for _ in range(settings.warmup):
        alone()
        both()
    report = phase("with speech gate")
    walls, cpus = _alternate({"alone": alone, "gated": both}, settings.repeat, report)
    latency["end_to_end_with_gate"] = latency_stats(walls["gated"])
    every_window = _ratios(walls, cpus)

    config = model.frontend_config
    clip = speech_like(CLIP_SECONDS, config.sample_rate, seed=3)
    plain, gated = ClipScorer(model), ClipScorer(model, speech=gate)
    windows = len(plain.score_audio(clip).window_scores)
    clip_runs = max(10, settings.repeat // 5)
    walls, cpus = _alternate({"alone": lambda: plain.score_audio(clip),
                              "gated": lambda: gated.score_audio(clip)}, clip_runs,
                             phase("classify a clip, gate on / off"))
    clip_report = {"clip_seconds": CLIP_SECONDS, "windows": windows,
                   "stride": gate_stride(config.window_samples, plain.hop_samples),
                   "gated_windows": len(gated.score_audio(clip).speech_scores), "runs": clip_runs,
                   **_ratios(walls, cpus, per=windows)}

    def live(speech: SpeechPresence | None) -> Callable[[], None]:
        def push() -> None:
            detector = LiveDetector(model, config, 0.5, hop_seconds=settings.hop_seconds,
                                    gate=SpeechGate(config.sample_rate, kind="off"),
                                    max_utterance=2 * CLIP_SECONDS, speech=speech)
            detector.push(clip)
            detector.flush()
        return push

    counter = LiveDetector(model, config, 0.5, hop_seconds=settings.hop_seconds,
                           gate=SpeechGate(config.sample_rate, kind="off"),
                           max_utterance=2 * CLIP_SECONDS)
    counter.push(clip)
    counter.flush()
    walls, cpus = _alternate({"alone": live(None), "gated": live(gate)}, clip_runs,
                             phase("live stream, gate on / off"))
    stream_report = {"hop_seconds": settings.hop_seconds,
                     "stride": gate_stride(config.window_samples,
                                           counter.hop_blocks * counter.block),
                     "windows": counter.windows_scored, "runs": clip_runs,
                     **_ratios(walls, cpus, per=counter.windows_scored)}
    return {
        "path": str(gate.model.path),
        "sha256": gate.model.card.sha256,
        "macs_per_window": read_graph(gate.model.path).macs,
        # The headline: classify's whole per-window pipeline, gate on its schedule.
        "cost_ratio": clip_report["cost_ratio"],
        "cost_ratio_min": clip_report["cost_ratio_min"],
        "cost_ratio_cpu": clip_report["cost_ratio_cpu"],
        "clip": clip_report,
        "stream": stream_report,
        "every_window": every_window,
    }
