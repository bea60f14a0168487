"""What every benchmark prints about where it ran: source commit, CPU, Python, package versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def describe(source: Path, paths: list[str], packages: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, text) rows; `paths` are the meterlink files whose uncommitted changes would matter."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in packages)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", *paths], capture_output=True,
                               text=True).stdout
        where = f"{source} at {commit}" + (f" with uncommitted changes in {', '.join(paths)}" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        where = f"{source} (not a git work tree)"
    return [
        ("meterlink source", where),
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs (the benchmark uses one); load average at start {load}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} {platform.release()}"),
        ("packages", versions),
    ]
