"""What every benchmark hands back: its tables as data, the machine it ran on, Markdown or JSON.

A benchmark builds a `Report` (its tables, already formatted cell by cell, and the notes of its
untimed checks) and calls `emit`: Markdown for a reader by default, JSON with `--json` for
bench/run.py, which puts the tables into bench/README.md between the benchmark's markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """One Markdown table: `rows` are formatted cells; the last `numeric` columns are right-aligned."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: int = 0


@dataclass(frozen=True)
class Report:
    bench: str
    title: str
    machine: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the tables as JSON (for bench/run.py) instead of Markdown")


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def versions(packages: tuple[str, ...]) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def source_state(source: Path, paths: list[str]) -> str:
    """`source` at its commit, saying whether `paths` (the files a benchmark measures) have uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", *paths], capture_output=True,
                               text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{source} (not a git work tree)"
    changed = [line[3:] for line in dirty.splitlines()]
    return f"{source} at {commit}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else "")


def describe(source: Path, paths: list[str], packages: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, text) rows; `paths` are the meterlink files whose uncommitted changes would matter."""
    return [
        ("meterlink source", source_state(source, paths)),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} logical CPUs (the benchmark uses one); load average at start {load_average()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} on {platform.system()} {platform.release()}"),
        ("packages", versions(packages)),
    ]


def markdown_table(table: Table) -> str:
    width = len(table.columns)
    align = ["---"] * (width - table.numeric) + ["---:"] * table.numeric
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def tables_markdown(report: Report) -> str:
    """The notes and the tables, each table under its title: what bench/run.py puts into the README."""
    parts = []
    if report.notes:
        parts.append("\n".join(f"- {note}" for note in report.notes))
    for table in report.tables:
        parts.append((f"{table.title}\n\n" if table.title else "") + markdown_table(table))
    return "\n\n".join(parts)


def to_markdown(report: Report) -> str:
    machine = "\n".join(f"- {label}: {text}" for label, text in report.machine)
    return "\n\n".join(part for part in (f"# {report.title}", machine, tables_markdown(report)) if part)


def to_json(report: Report) -> str:
    return json.dumps(asdict(report), ensure_ascii=False, indent=1)


def from_json(text: str) -> Report:
    data = json.loads(text)
    return Report(bench=data["bench"], title=data["title"], machine=[tuple(pair) for pair in data.get("machine", [])],
                  notes=list(data.get("notes", [])),
                  tables=[Table(t["title"], list(t["columns"]), [list(row) for row in t["rows"]], t.get("numeric", 0))
                          for t in data.get("tables", [])])


def emit(report: Report, as_json: bool) -> None:
    sys.stdout.write((to_json(report) if as_json else to_markdown(report)) + "\n")
