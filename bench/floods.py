#!/usr/bin/env python3
"""Floods through `decode` and through a link's framer and machine (issue 12, item 10).

`decode mbus` on 100 kB of 0xE5 and `decode hdlc` (the annotation, now `decode hdlc --annotate`) on
1 MB of `7E A0` once took 30 s and 26 s: the M-Bus framer made one machine event per 0xE5, the HDLC
framer two per false frame start, and `decode hdlc` printed an entry per false start. This script times the commands as a user runs them
(a new process each, output to /dev/null) and counts what the floods become: the events a link's
machine is handed (all bytes in one read, and in 4 KiB reads as an actor gets them), with the time
of framer + machine, and the lines `decode` prints. Timings are reported, never asserted; see
bench/README.md, section Floods.

    .venv/bin/python bench/floods.py [--rounds 3]

To time another tree, e.g. the commit before the batching, run this script with that tree first on
the path (-S keeps the editable install's finder, which would win, out of the way):

    git archive <commit> meterlink | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:$(echo .venv/lib/python3*/site-packages) .venv/bin/python -S bench/floods.py --rounds 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import meterlink
from meterlink.machines.dlms import DlmsClient
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.hdlc import HdlcFramer
from meterlink.protocols.mbus import MBusFramer
from meterlink.simulators.kaifa import DEMO_KEY

from machine import describe

READ = 4096
"""Bytes per read in the actor-like runs (trio streams hand over what has arrived, up to a limit)."""


@dataclass(frozen=True)
class Flood:
    command: list[str]
    what: str
    data: bytes
    framer: Callable[[], object]
    machine: Callable[[], object]


FLOODS = [
    Flood(["decode", "mbus", "--key", DEMO_KEY.hex()], "100 kB of E5", b"\xe5" * 100_000, MBusFramer, MBusAdapter),
    Flood(["decode", "mbus", "--key", DEMO_KEY.hex()], "100 kB of 68", b"\x68" * 100_000, MBusFramer, MBusAdapter),
    Flood(["decode", "hdlc", "--annotate"], "1 MB of 7E A0", b"\x7e\xa0" * 500_000, HdlcFramer, DlmsClient),
    Flood(["decode", "hdlc", "--annotate"], "1 MB of 7E 00", b"\x7e\x00" * 500_000, HdlcFramer, DlmsClient),
]


@dataclass(frozen=True)
class Run:
    seconds: float
    stdout_lines: int
    stderr_lines: int
    exit_code: int


def run_command(flood: Flood, path: Path) -> Run:
    """The command in a new process, as a user runs it, with this interpreter and path."""
    flags = ["-S"] if sys.flags.no_site else []
    code = "import sys; from meterlink.cli import main; sys.exit(main(sys.argv[1:]))"
    start = time.perf_counter()
    # Started in the flood's directory: `-c` puts the working directory first on the path.
    done = subprocess.run([sys.executable, *flags, "-c", code, *flood.command, path.name], capture_output=True,
                          cwd=path.parent)
    seconds = time.perf_counter() - start
    return Run(seconds, len(done.stdout.splitlines()), len(done.stderr.splitlines()), done.returncode)


def machine_events(flood: Flood, read: int) -> tuple[int, float]:
    """(events handed to the machine, seconds of framer + machine) with the flood in reads of `read` bytes."""
    framer, machine = flood.framer(), flood.machine()
    events = 0
    start = time.perf_counter()
    for offset in range(0, len(flood.data), read):
        for event in framer.feed(flood.data[offset : offset + read]):
            machine.handle(event, None)
            events += 1
        machine.take_actions()
    return events, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command; the best is reported")
    options = parser.parse_args()
    source = Path(meterlink.__path__[0]).parent
    print(f"# Floods benchmark, {datetime.now():%Y-%m-%d %H:%M}\n")
    for label, text in describe(source, ["meterlink/"], ("python-statemachine",)):
        print(f"- {label}: {text}")
    print(f"\ncommands: best of {options.rounds} runs, a new process each (start-up included)\n")
    print("| command | input | s | lines out | lines err | exit |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for flood in FLOODS:
            path = Path(tmp) / "flood.bin"
            path.write_bytes(flood.data)
            runs = [run_command(flood, path) for _ in range(options.rounds)]
            best = min(runs, key=lambda run: run.seconds)
            print(f"| `meterlink {' '.join(flood.command[:2])}` | {flood.what} | {best.seconds:.2f} | "
                  f"{best.stdout_lines:,} | {best.stderr_lines:,} | {best.exit_code} |")
    print(f"\nframer + machine in this process (one run each): events handed to the machine, seconds\n")
    print("| framer, machine | input | events, one read | s | events, reads of 4 KiB | s |")
    print("|---|---|---:|---:|---:|---:|")
    for flood in FLOODS:
        whole, whole_s = machine_events(flood, len(flood.data))
        chunked, chunked_s = machine_events(flood, READ)
        names = f"{flood.framer.__name__}, {flood.machine.__name__}"
        print(f"| {names} | {flood.what} | {whole:,} | {whole_s:.2f} | {chunked:,} | {chunked_s:.2f} |")
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
