"""Modern speech generators behind `edge-train synth kokoro` / `edge-train synth hifigan`.

Each engine lives in its own module and needs the optional ``synth`` extra
(``pip install -e '.[synth]'``); nothing here is imported by the board runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

SYNTH_EXTRA_HINT = "pip install -e '.[synth]'"


class EngineError(ValueError):
    """An engine that cannot run here (a package or asset missing) or input it cannot use."""


def missing_package(module: str, package: str, engine: str) -> EngineError:
    return EngineError(f"the {engine} engine needs the Python package '{package}' "
                       f"(not installed; {SYNTH_EXTRA_HINT})")


def require(module: str, package: str, engine: str) -> ModuleType:
    """Import ``module`` or raise EngineError naming the PyPI ``package`` that provides it."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise missing_package(module, package, engine)
    return importlib.import_module(module)
