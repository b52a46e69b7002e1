"""The `edge-detect` command line: parses, calls edge_runtime, prints. No logic of its own.

Exit codes (edge_runtime.errors): 0 bona fide speech, 1 spoof, 2 usage or input error,
3 runtime fault (device, model), 4 no speech.
Every EdgeDetectError becomes one line on stderr and its exit code, here and only here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from edge_runtime import __version__
from edge_runtime.errors import EXIT_INPUT_ERROR, EXIT_RUNTIME_FAULT, EdgeDetectError

EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # as if killed by SIGPIPE (128 + 13), what shells expect


class EdgeDetectGroup(click.Group):
    """Maps every failure to one stderr line and a non-zero exit code, never a traceback.

    A fault we did not foresee is still a fault: it exits 3, never 0, so a caller that only
    checks for 0 ("bona fide") is never told a recording passed when it was not judged.
    EDGE_DETECT_DEBUG=1 shows the traceback instead.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeDetectError as error:
            click.echo(f"edge-detect: error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("edge-detect: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`| head -1`); point stdout at /dev/null so the interpreter's
            # final flush does not raise again, and exit quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OUTPUT_CLOSED)
        except Exception as error:
            if os.environ.get("EDGE_DETECT_DEBUG"):
                raise
            detail = str(error).strip().splitlines()
            click.echo(
                f"edge-detect: internal error: {type(error).__name__}"
                f"{': ' + detail[0] if detail else ''} (EDGE_DETECT_DEBUG=1 shows the traceback)",
                err=True,
            )
            sys.exit(EXIT_RUNTIME_FAULT)


@click.group(cls=EdgeDetectGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-detect")
def main() -> None:
    """Spoofed-speech (audio deepfake) detection on the edge."""


def _register() -> None:
    from edge_runtime.cli.bench import bench
    from edge_runtime.cli.calibrate import calibrate
    from edge_runtime.cli.classify import classify
    from edge_runtime.cli.config_cmd import config
    from edge_runtime.cli.info import info
    from edge_runtime.cli.run import run

    main.add_command(bench)
    main.add_command(classify)
    main.add_command(info)
    main.add_command(run)
    main.add_command(config)
    main.add_command(calibrate)


_register()

__all__ = ["EXIT_INPUT_ERROR", "main"]
