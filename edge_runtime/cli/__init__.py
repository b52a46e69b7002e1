"""The `edge-detect` command line: parses, calls edge_runtime, prints. No logic of its own.

Exit codes (edge_runtime.errors): 0 bona fide speech (the owner's, where one is asked for),
1 spoof, 2 usage or input error, 3 runtime fault (device, model), 4 no speech, 5 not the owner.
Every EdgeDetectError becomes one line on stderr and its exit code, here and only here.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from edge_runtime import __version__
from edge_runtime.errors import (
    EXIT_INPUT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_RUNTIME_FAULT,
    EdgeDetectError,
)

# Each command's module is imported only when that command runs: `classify` on a board does
# not pay for the profile parser, the bench or the live path (memory and cold start).
COMMANDS = {
    "bench": "edge_runtime.cli.bench:bench",
    "calibrate": "edge_runtime.cli.calibrate:calibrate",
    "classify": "edge_runtime.cli.classify:classify",
    "config": "edge_runtime.cli.config_cmd:config",
    "enrol": "edge_runtime.cli.owner:enrol",
    "info": "edge_runtime.cli.info:info",
    "run": "edge_runtime.cli.run:run",
    "verify": "edge_runtime.cli.owner:verify",
}


class EdgeDetectGroup(click.Group):
    """Maps every failure to one stderr line and a non-zero exit code, never a traceback.

    A fault we did not foresee is still a fault: it exits 3, never 0, so a caller that only
    checks for 0 ("bona fide") is never told a recording passed when it was not judged.
    EDGE_DETECT_DEBUG=1 shows the traceback instead.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module_name, _, attribute = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

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


__all__ = ["EXIT_INPUT_ERROR", "main"]
