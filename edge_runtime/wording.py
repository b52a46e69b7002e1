"""How counts read in messages: "1 window", "2 windows"."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` with ``noun``, pluralised with an "s" unless the count is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
