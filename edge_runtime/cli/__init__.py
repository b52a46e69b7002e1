"""The `edge-detect` command line: parses, calls edge_runtime, prints. No logic of its own.

Exit codes: 0 bona fide, 1 spoof, 2 usage or input error, 3 runtime fault (device, model).
Every EdgeDetectError becomes one line on stderr and its exit code, here and only here.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from edge_runtime import __version__
from edge_runtime.errors import EXIT_INPUT_ERROR, EdgeDetectError


class EdgeDetectGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeDetectError as error:
            click.echo(f"edge-detect: error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("edge-detect: interrupted", err=True)
            sys.exit(130)


@click.group(cls=EdgeDetectGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-detect")
def main() -> None:
    """Spoofed-speech (audio deepfake) detection on the edge."""


def _register() -> None:
    from edge_runtime.cli.classify import classify
    from edge_runtime.cli.info import info

    main.add_command(classify)
    main.add_command(info)


_register()

__all__ = ["main", "EXIT_INPUT_ERROR"]
