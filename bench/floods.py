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

from report import Report, Table, add_json_option, describe, emit

READ = 4096
"""Bytes per read in the actor-like runs (trio streams hand over what has arrived, up to a limit)."""


@dataclass(frozen=True)
class Flood:
    command: list[str]
    pattern: bytes
    size: int
    """Bytes of `pattern` repeated (at scale 1)."""
    framer: Callable[[], object]
    machine: Callable[[], object]

    def scaled(self, scale: float) -> tuple[str, bytes]:
        """What the flood is, in words, and its bytes, `scale` times the full size."""
        size = int(self.size * scale) // len(self.pattern) * len(self.pattern)
        amount = f"{size // 1_000_000} MB" if size % 1_000_000 == 0 else f"{size // 1000} kB" if size % 1000 == 0 else f"{size:,} bytes"
        return f"{amount} of {self.pattern.hex(' ').upper()}", self.pattern * (size // len(self.pattern))


FLOODS = [
    Flood(["decode", "mbus", "--key", DEMO_KEY.hex()], b"\xe5", 100_000, MBusFramer, MBusAdapter),
    Flood(["decode", "mbus", "--key", DEMO_KEY.hex()], b"\x68", 100_000, MBusFramer, MBusAdapter),
    Flood(["decode", "hdlc", "--annotate"], b"\x7e\xa0", 1_000_000, HdlcFramer, DlmsClient),
    Flood(["decode", "hdlc", "--annotate"], b"\x7e\x00", 1_000_000, HdlcFramer, DlmsClient),
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


def machine_events(flood: Flood, data: bytes, read: int) -> tuple[int, float]:
    """(events handed to the machine, seconds of framer + machine) with `data` in reads of `read` bytes."""
    framer, machine = flood.framer(), flood.machine()
    events = 0
    start = time.perf_counter()
    for offset in range(0, len(data), read):
        for event in framer.feed(data[offset : offset + read]):
            machine.handle(event, None)
            events += 1
        machine.take_actions()
    return events, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command; the best is reported")
    parser.add_argument("--scale", type=float, default=1.0, help="flood sizes times this (default 1: 100 kB and 1 MB)")
    add_json_option(parser)
    options = parser.parse_args()
    source = Path(meterlink.__path__[0]).parent
    info = describe(source, ["meterlink/"], ("python-statemachine",))
    floods = [(flood, *flood.scaled(options.scale)) for flood in FLOODS]
    commands = []
    with tempfile.TemporaryDirectory() as tmp:
        for flood, what, data in floods:
            path = Path(tmp) / "flood.bin"
            path.write_bytes(data)
            runs = [run_command(flood, path) for _ in range(options.rounds)]
            best = min(runs, key=lambda run: run.seconds)
            commands.append([f"`meterlink {' '.join(flood.command[:2])}`", what, f"{best.seconds:.2f}",
                             f"{best.stdout_lines:,}", f"{best.stderr_lines:,}", str(best.exit_code)])
    machines = []
    for flood, what, data in floods:
        whole, whole_s = machine_events(flood, data, len(data))
        chunked, chunked_s = machine_events(flood, data, READ)
        names = f"{flood.framer.__name__}, {flood.machine.__name__}"
        machines.append([names, what, f"{whole:,}", f"{whole_s:.2f}", f"{chunked:,}", f"{chunked_s:.2f}"])
    tables = [
        Table(f"Commands: best of {options.rounds} runs, a new process each (start-up included):",
              ["command", "input", "s", "lines out", "lines err", "exit"], commands, numeric=4),
        Table("Framer + machine in this process (one run each): events handed to the machine, seconds:",
              ["framer, machine", "input", "events, one read", "s", "events, reads of 4 KiB", "s"], machines, numeric=4),
    ]
    notes = [f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"]
    emit(Report("floods", f"Floods benchmark, {datetime.now():%Y-%m-%d %H:%M}", info, notes, tables), options.json)


if __name__ == "__main__":
    main()
