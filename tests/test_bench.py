"""edge_runtime.bench, edge_runtime.macs, `edge-detect bench` and the benchmarks/ suite."""

from __future__ import annotations

import copy
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_runtime.bench import BenchSettings, latency_stats, run_bench
from edge_runtime.bench_compare import compare_table
from edge_runtime.bench_report import SCHEMA_VERSION, load_report, validate_report
from edge_runtime.cli import main
from edge_runtime.errors import ConfigError
from edge_runtime.macs import op_macs, read_graph
from edge_runtime.model import ModelCard, card_path_for

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "benchmarks" / "fixtures" / "tiny_macs.tflite"
TINY_SETTINGS = BenchSettings(warmup=1, repeat=5, cold_runs=1, stream_seconds=6.0,
                              hop_seconds=0.5)


@pytest.fixture(scope="module")
def tiny_report(shipped_model_path: Path) -> dict:
    tensorflow_before = "tensorflow" in sys.modules
    report = run_bench(shipped_model_path, threads=1, settings=TINY_SETTINGS, note=None,
                       progress=None)
    # The report tells whether the measuring process holds TensorFlow; in a pytest session a
    # training test run earlier may have imported it, which is not the bench's doing.
    report["tensorflow_before_bench"] = tensorflow_before
    return report


# --- MACs and tensor memory ------------------------------------------------------------------

def test_macs_of_tiny_known_model():
    # Hand counts in benchmarks/fixtures/make_tiny_model.py.
    graph = read_graph(TINY)
    assert [op.name for op in graph.ops] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert [op.macs for op in graph.ops] == [1728, 1728, 384, 0, 288]
    assert graph.macs == 4128
    assert graph.macs_by_op == {"CONV_2D": 2112, "DEPTHWISE_CONV_2D": 1728, "RESHAPE": 0,
                                "FULLY_CONNECTED": 288}


def test_activation_memory_of_tiny_known_model():
    graph = read_graph(TINY)
    # float32 activations: input 8*6*1, conv 8*6*4, depthwise 8*6*4, conv 8*6*2, reshape 96,
    # dense 3 (elements * 4 bytes); the reshape's shape operand is a constant.
    assert graph.activation_bytes == 4 * (48 + 192 + 192 + 96 + 96 + 3)
    # Largest pair alive at once: depthwise input and output, 2 * 192 floats.
    assert graph.peak_live_activation_bytes == 4 * 2 * 192
    assert graph.constant_bytes > 4 * (36 + 36 + 8 + 288)  # at least all the weights


def test_macs_of_shipped_model_match_its_architecture(shipped_model_path: Path):
    card = ModelCard.from_json(card_path_for(shipped_model_path))
    arch = card.extra.get("architecture", {})
    if arch.get("architecture", "edge") != "edge" or "stem_channels" not in arch:
        pytest.skip("shipped model is not the edge architecture")
    # host_training.model.build_model, counted by hand: 3x3 stem, then per block a 1x1 skip
    # and two 3x3 convs at doubled width, a max-pool after the stem (2 frames x stem_band_pool
    # bands) and 2x2 after each block.
    frames, bands = card.frontend.feature_shape
    expected = frames * bands * arch["stem_channels"] * 9
    frames, bands = frames // 2, bands // arch.get("stem_band_pool", 2)
    channels = arch["stem_channels"]
    for _ in range(arch["blocks"]):
        out = channels * 2
        expected += frames * bands * out * (channels + 9 * channels + 9 * out)
        frames, bands, channels = frames // 2, bands // 2, out
    # The head: "global" pooling hands the dense layer one value per channel; the time
    # poolings one per channel and band group (twice with the maximum beside the mean).
    head_inputs = {"global": channels, "time": channels * bands,
                   "time_max": 2 * channels * bands}[arch.get("pooling", "global")]
    expected += head_inputs * arch["dense_units"] + arch["dense_units"]
    assert read_graph(shipped_model_path).macs == expected


def test_op_macs_formulas():
    from edge_runtime.macs import TensorInfo

    def t(*shape: int) -> TensorInfo:
        return TensorInfo(tuple(shape), "int8", math.prod(shape), False)

    assert op_macs("CONV_2D", [t(1, 10, 10, 3), t(16, 3, 3, 3)], [t(1, 5, 5, 16)]) == 25 * 16 * 27
    assert op_macs("DEPTHWISE_CONV_2D", [t(1, 8, 8, 4), t(1, 5, 5, 4)], [t(1, 8, 8, 4)]) == (
        256 * 25)
    assert op_macs("FULLY_CONNECTED", [t(2, 7), t(5, 7)], [t(2, 5)]) == 70
    assert op_macs("TRANSPOSE_CONV", [t(4), t(6, 3, 3, 2), t(1, 4, 4, 2)],
                   [t(1, 8, 8, 6)]) == 32 * 54
    assert op_macs("BATCH_MATMUL", [t(3, 4, 5), t(3, 5, 6)], [t(3, 4, 6)]) == 72 * 5
    assert op_macs("ADD", [t(1, 4), t(1, 4)], [t(1, 4)]) == 0


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x10\x00\x00\x00TFL3"])
def test_read_graph_refuses_non_models(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="TFLite"):
        read_graph(path)


def test_read_graph_refuses_truncated_model(tmp_path: Path):
    path = tmp_path / "cut.tflite"
    data = TINY.read_bytes()
    # keep the header, then point the root table past the end of the file
    path.write_bytes(struct.pack("<I", len(data) * 2) + data[4:200])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_graph(path)


# --- statistics and the report -------------------------------------------------------------

def test_latency_stats_in_milliseconds():
    stats = latency_stats([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats["count"] == 100
    assert stats["min"] == pytest.approx(1.0)
    assert stats["max"] == pytest.approx(100.0)
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["mean"] == pytest.approx(50.5)
    with pytest.raises(ValueError):
        latency_stats([])


def test_bench_settings_refuse_nonsense():
    with pytest.raises(ConfigError):
        BenchSettings(repeat=0)
    with pytest.raises(ConfigError):
        BenchSettings(hop_seconds=0)


def test_tiny_bench_report(tiny_report: dict, shipped_model_path: Path):
    assert validate_report(tiny_report) == []
    assert tiny_report["schema_version"] == SCHEMA_VERSION
    card = ModelCard.from_json(card_path_for(shipped_model_path))
    assert tiny_report["model"]["sha256"] == card.sha256
    assert tiny_report["model"]["size_bytes"] == shipped_model_path.stat().st_size
    for key in ("frontend", "invoke", "model", "end_to_end"):
        stats = tiny_report["latency_ms"][key]
        assert stats["count"] == TINY_SETTINGS.repeat
        assert 0 < stats["min"] <= stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    # Windows are scored from the first hop at which a whole window of frames has arrived.
    fe = card.frontend
    needed = fe.n_fft + (fe.frames_per_window - 1) * fe.hop_length
    hop = round(TINY_SETTINGS.hop_seconds * fe.sample_rate)
    total = round(TINY_SETTINGS.stream_seconds * fe.sample_rate)
    pushed = [min(total, (k + 1) * hop) for k in range(math.ceil(total / hop))]
    stream = tiny_report["stream"]
    assert stream["hops"] == len(pushed)
    assert stream["windows_scored"] == sum(p >= needed for p in pushed)
    assert stream["rtf"] == pytest.approx(stream["wall_seconds"] / TINY_SETTINGS.stream_seconds)
    compute = tiny_report["compute"]
    assert compute["macs_per_window"] == read_graph(shipped_model_path).macs
    assert compute["achieved_macs_per_s"] == pytest.approx(
        compute["macs_per_window"] / (tiny_report["latency_ms"]["invoke"]["p50"] / 1e3))
    cold = tiny_report["cold_start"]
    assert cold["first_score_s"]["runs"] == 1
    assert cold["first_score_s"]["p50"] > sum(cold["breakdown_p50_s"].values()) * 0.9
    # A 16 kHz clip needs no resampling, so scipy must stay off the scoring path.
    assert cold["child_scipy_imported"] is False
    assert tiny_report["memory"]["tensorflow_imported"] is tiny_report["tensorflow_before_bench"]
    assert tiny_report["memory"]["peak_rss_bytes"] > 10 * 2**20


def test_validate_report_names_the_problem(tiny_report: dict):
    broken = copy.deepcopy(tiny_report)
    del broken["latency_ms"]["invoke"]
    broken["stream"]["rtf"] = "fast"
    problems = validate_report(broken)
    assert "report.latency_ms: 'invoke' is a required property" in problems
    assert "report.stream.rtf: 'fast' is not of type 'number'" in problems
    newer = dict(tiny_report, schema_version=SCHEMA_VERSION + 1)
    assert "schema_version" in validate_report(newer)[0]
    assert validate_report([1, 2]) == ["report: expected a JSON object"]


def test_compare_table_rows_and_notes(tiny_report: dict):
    other = copy.deepcopy(tiny_report)
    other["device"]["hostname"] = "pi4"
    other["device"]["arch"] = "aarch64"
    other["note"] = "EMULATED: not representative"
    table = compare_table([tiny_report, other]).splitlines()
    assert table[0].startswith("| device |")
    assert set(table[1].replace("|", "")) == {"-"}
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2
    assert rows[1].startswith("| pi4-aarch64 [1] |")
    assert f"{tiny_report['latency_ms']['invoke']['p50']:.2f}" in rows[0]
    assert table[-1] == "[1] EMULATED: not representative"


def test_load_report_errors(tmp_path: Path, tiny_report: dict):
    with pytest.raises(ConfigError, match="no such file"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ConfigError, match="not a JSON bench report"):
        load_report(tmp_path / "text.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(ConfigError, match="not a bench report"):
        load_report(tmp_path / "other.json")
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"schema": "edge-detect/bench-suite", "edge": tiny_report}))
    assert load_report(suite)["model"]["sha256"] == tiny_report["model"]["sha256"]


# --- CLI -----------------------------------------------------------------------------------

def test_cli_bench_writes_a_valid_report(tmp_path: Path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, [
        "bench", "--warmup", "0", "--repeat", "3", "--cold-runs", "0", "--stream-seconds", "5",
        "--threads", "1", "--note", "test run", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert validate_report(report) == []
    assert report["cold_start"] is None
    assert report["note"] == "test run"
    assert report["settings"]["threads"] == 1
    assert "stream:" in result.stdout and "RTF" in result.stdout


def test_cli_bench_refuses_missing_output_directory(tmp_path: Path):
    result = CliRunner().invoke(main, ["bench", "--json", str(tmp_path / "no" / "r.json")])
    assert result.exit_code == 2
    assert "no such directory" in result.output


def test_cli_compare_table_and_plot(tmp_path: Path, tiny_report: dict):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(tiny_report))
    other = copy.deepcopy(tiny_report)
    other["device"]["hostname"] = "board"
    second.write_text(json.dumps(other))
    plot = tmp_path / "cmp.png"
    result = CliRunner().invoke(main, ["bench", "compare", str(first), str(second),
                                       "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "| board-" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_skips_other_json_with_a_note(tmp_path: Path, tiny_report: dict):
    report, soak = tmp_path / "a.json", tmp_path / "soak.json"
    report.write_text(json.dumps(tiny_report))
    soak.write_text(json.dumps({"schema": "edge-detect/soak", "hours": 1}))
    result = CliRunner().invoke(main, ["bench", "compare", str(report), str(soak), "--no-plot"])
    assert result.exit_code == 0, result.output
    assert f"skipped: {soak}: not a bench report" in result.stderr
    assert result.stdout.count(f"`{tiny_report['model']['sha256'][:12]}`") == 1
    alone = CliRunner().invoke(main, ["bench", "compare", str(soak), "--no-plot"])
    assert alone.exit_code == 2 and "none of these files is a bench report" in alone.output


def test_committed_results_compare_as_the_readme_shows() -> None:
    results = sorted((REPO / "benchmarks" / "results").glob("*.json"))
    result = CliRunner().invoke(main, ["bench", "compare", *map(str, results), "--no-plot"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("| device |")


def test_cli_compare_bad_file_is_one_line(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = subprocess.run([sys.executable, "-m", "edge_runtime", "bench", "compare", str(bad),
                           "--no-plot"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "not a JSON bench report" in done.stderr
    assert "Traceback" not in done.stderr


# --- the suite -------------------------------------------------------------------------------

@pytest.mark.slow
def test_suite_quick_run(tmp_path: Path):
    done = subprocess.run(
        [str(REPO / "benchmarks" / "run"), "--quick", "--no-tensorflow", "--threads", "1",
         "--out", str(tmp_path), "--label", "test"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    suite = json.loads((tmp_path / "test.json").read_text())
    assert validate_report(suite["edge"]) == []
    assert {t["key"] for t in suite["targets"]} >= {"stream_rtf", "peak_rss_mb", "model_kb"}
    assert suite["invoke"]["1"]["int8"]["invoke_ms"]["count"] == 20
    assert "| figure | target | measured | met |" in done.stdout


@pytest.mark.slow
def test_callgrind_count_is_repeatable(shipped_model_path: Path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import callgrind

    if callgrind.shutil.which("valgrind") is None:
        pytest.skip("valgrind not installed")
    first = callgrind.count(str(shipped_model_path), 2, "invoke")
    second = callgrind.count(str(shipped_model_path), 2, "invoke")
    assert abs(first - second) <= 1e-6 * first
