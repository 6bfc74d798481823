"""A secret value that never prints: ``repr``, ``str`` and f-strings show asterisks.

Settings and accounts hold keys, tokens and proxy URLs in it, so a settings object
that reaches a log line, a traceback or ``status`` output cannot carry one along.
Only ``get_secret_value()`` gives the text, at the one place that sends it.
"""

from __future__ import annotations

from typing import Any

HIDDEN = "**********"


class Secret:
    """Text that shows as ``**********``; empty text counts as false."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{HIDDEN if self._value else ''}')"

    def __str__(self) -> str:
        return HIDDEN if self._value else ""

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
