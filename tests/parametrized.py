"""The argument sets pytest calls a test with, for tests that replay other tests' scenarios."""

from __future__ import annotations

from typing import Any, Callable


def cases(function: Callable[..., Any]) -> list[dict[str, Any]]:
    """The arguments pytest calls `function` with, from its parametrize marks (their product)."""
    found: list[dict[str, Any]] = [{}]
    for mark in getattr(function, "pytestmark", []):
        names, values = mark.args
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        rows = [dict(zip(names, value if len(names) > 1 else (value,))) for value in values]
        found = [{**case, **row} for case in found for row in rows]
    return found
