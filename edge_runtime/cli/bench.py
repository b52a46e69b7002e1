"""`edge-detect bench`: latency and memory on this device -> JSON; `bench compare` for many."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.cli.options import model_option, threads_option
from edge_runtime.defaults import DEFAULT_HOP_SECONDS, HOP_RANGE
from edge_runtime.errors import ConfigError


def _summary(report: dict) -> str:
    latency, stream, memory = report["latency_ms"], report["stream"], report["memory"]
    cold = report["cold_start"]
    compute = report["compute"]
    lines = [
        f"device:      {report['device']['cpu_model']} x{report['device']['cores']} "
        f"({report['device']['arch']}, {report['device']['interpreter']}, "
        f"threads {report['settings']['threads'] or 'default'})",
        f"model:       {report['model']['path']} ({report['model']['size_bytes'] / 1024:.1f} KiB,"
        f" sha256 {report['model']['sha256'][:12]})",
        "per window   min / p50 / p95 / p99 ms",
    ]
    for key, name in (("frontend", "front end"), ("invoke", "invoke"),
                      ("model", "score_window"), ("end_to_end", "end to end")):
        s = latency[key]
        lines.append(f"  {name:<12}{s['min']:8.2f} {s['p50']:8.2f} {s['p95']:8.2f} "
                     f"{s['p99']:8.2f}")
    gate = report.get("speech_gate")
    if gate:
        s = latency["end_to_end_with_gate"]
        every = gate["every_window"]
        lines.append(f"  {'+ speech gate':<12}{s['min']:8.2f} {s['p50']:8.2f} {s['p95']:8.2f} "
                     f"{s['p99']:8.2f}  (gate on every window: x{every['cost_ratio']:.3f} "
                     f"at p50; gate {gate['macs_per_window'] / 1e6:.2f} M MAC)")
        for key, name in (("clip", "classify"), ("stream", "run")):
            part = gate[key]
            lines.append(f"speech gate, {name}: x{part['cost_ratio']:.3f} per window at p50, "
                         f"x{part['cost_ratio_min']:.3f} at min, x{part['cost_ratio_cpu']:.3f} "
                         f"in CPU time ({part['alone_p50_ms']:.2f} -> "
                         f"{part['with_gate_p50_ms']:.2f} ms; the gate on one "
                         f"window in {part['stride']}, on / off alternated)")
    lines.append(f"stream:      RTF {stream['rtf']:.4f}, CPU {stream['rtf_cpu']:.4f} "
                 f"({stream['audio_seconds']:.0f} s audio, "
                 f"hop {stream['hop_seconds']} s, {stream['windows_scored']} windows)")
    if cold:
        lines.append(f"cold start:  {cold['first_score_s']['p50']:.3f} s to first score, "
                     f"classify command {cold['cli_classify_s']['p50']:.3f} s")
    lines.append(f"peak RSS:    {memory['peak_rss_bytes'] / 1e6:.1f} MB")
    if compute["achieved_macs_per_s"]:
        lines.append(f"compute:     {compute['macs_per_window'] / 1e6:.2f} M MAC/window, "
                     f"{compute['achieved_macs_per_s'] / 1e9:.1f} GMAC/s at invoke p50")
    return "\n".join(lines)


@click.group(invoke_without_command=True)
@model_option
@threads_option
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Write the report here ('-' for stdout).")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True,
              help="Untimed calls before each timed series.")
@click.option("--repeat", type=click.IntRange(1), default=200, show_default=True,
              help="Timed calls per series.")
@click.option("--cold-runs", type=click.IntRange(0), default=3, show_default=True,
              help="Fresh processes for the cold-start figure (0 skips it).")
@click.option("--stream-seconds", type=click.FloatRange(1.0, 3600.0), default=60.0,
              show_default=True, help="Audio pushed through the streaming path.")
@click.option("--hop", "hop_seconds", type=click.FloatRange(*HOP_RANGE),
              default=DEFAULT_HOP_SECONDS, show_default=True,
              help="Seconds between scored windows when streaming.")
@click.option("--note", default=None, help="Free text stored in the report (e.g. 'emulated').")
@click.pass_context
def bench(ctx: click.Context, model_path: Path | None, threads: int | None,
          json_out: Path | None, warmup: int, repeat: int, cold_runs: int,
          stream_seconds: float, hop_seconds: float, note: str | None) -> None:
    """Measure latency, real-time factor and memory of the edge runtime on this device.

    Progress goes to stderr, a summary (or the JSON with --json -) to stdout.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edge_runtime.atomic import write_text_atomically
    from edge_runtime.bench import BenchSettings, Progress, run_bench

    settings = BenchSettings(warmup=warmup, repeat=repeat, cold_runs=cold_runs,
                             stream_seconds=stream_seconds, hop_seconds=hop_seconds)
    if json_out is not None and str(json_out) != "-" and not json_out.parent.is_dir():
        raise ConfigError(f"{json_out.parent}: no such directory for the report")
    report = run_bench(model_path, threads, settings, note, Progress(sys.stderr))
    text = json.dumps(report, indent=2)
    if json_out is not None and str(json_out) == "-":
        click.echo(text)
        return
    if json_out is not None:
        write_text_atomically(json_out, text + "\n")
    click.echo(_summary(report))


@bench.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--plot", type=click.Path(path_type=Path), default=Path("bench-compare.png"),
              show_default=True, help="PNG to write (needs matplotlib, host side).")
@click.option("--no-plot", is_flag=True, help="Only print the table.")
def compare(reports: tuple[Path, ...], plot: Path, no_plot: bool) -> None:
    """One markdown table (and optionally a PNG) from bench reports of several devices.

    Files that are JSON but not bench reports (a soak summary, say) are skipped with a note;
    a missing or unreadable file is an error (exit 2).
    """
    from edge_runtime.bench_compare import compare_table, plot_reports
    from edge_runtime.bench_report import NotABenchReport, load_report

    loaded = []
    for path in reports:
        try:
            loaded.append(load_report(path))
        except NotABenchReport as error:
            click.echo(f"edge-detect: skipped: {error}", err=True)
    if not loaded:
        raise ConfigError("none of these files is a bench report")
    click.echo(compare_table(loaded))
    if not no_plot:
        try:
            plot_reports(loaded, plot)
        except ImportError:
            raise ConfigError("--plot needs matplotlib (pip install matplotlib)") from None
        click.echo(f"\nplot: {plot}", err=True)
