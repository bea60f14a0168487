"""meterlink's own version, as installed (pyproject.toml), for `--version`, system_status and MQTT."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def software_version() -> str:
    try:
        return version("meterlink")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
