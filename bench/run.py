#!/usr/bin/env python3
"""Run the benchmarks and write their tables into bench/README.md (issue 23 item 3).

    bash dev.sh bench                          every benchmark, full length (about 13 minutes on a busy 2-core machine)
    bash dev.sh bench --quick                  every benchmark, few and short rounds: a smoke check
    bash dev.sh bench p1_decode mbus_decode    only these

Each benchmark runs as its own process (`bench/NAME.py --json`, plus the quick arguments in quick
mode) one after the other, so each meterlink figure is measured in the same process and run as its
peer's. The README keeps its hand-written prose; what lies between `<!-- bench:NAME begin -->` and
`<!-- bench:NAME end -->` is replaced, and so are the machine description (`bench:machine`) and
the index at the top (`bench:index`). A benchmark without markers gets a new section at the end.
A benchmark that fails leaves its block saying so, and the runner exits 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from report import cpu_model, from_json, load_average, source_state, tables_markdown, versions

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
README = BENCH / "README.md"

PACKAGES = ("meterlink", "dsmr-parser", "dlms-cosem", "pymodbus", "pymbusparser", "gurux-dlms", "cryptography",
            "python-statemachine", "trio", "hypercorn", "fastapi", "httpx", "paho-mqtt")
"""The libraries whose versions the machine description names: meterlink's own dependencies that
the benchmarks exercise, and the peers."""


@dataclass(frozen=True)
class Bench:
    name: str
    """bench/NAME.py; its markers are `<!-- bench:NAME begin -->` and `<!-- bench:NAME end -->`."""
    section: str
    """The README section (heading) that holds the markers."""
    question: str
    """What it answers, for the index at the top."""
    quick: tuple[str, ...] = ()
    """Arguments for --quick: few, short rounds, only to see that it runs."""


BENCHES = (
    Bench("p1_decode", "P1 decode", "P1 telegrams/s, meterlink against dsmr_parser",
          ("--rounds", "1", "--seconds", "0.02")),
    Bench("mbus_decode", "M-Bus", "Kaifa push telegrams/s (join + AES-GCM + A-XDR + mapping), meterlink against dlms-cosem",
          ("--telegrams", "30", "--rounds", "1")),
    Bench("latency", "Latency", "last byte of a telegram to the reading in the hub, on the SSE stream and on MQTT",
          ("--telegrams", "30", "--slow", "3", "--warmup", "3")),
    Bench("hdlc", "HDLC / DLMS client", "HDLC frames encoded + decoded/s and DLMS GET round trips/s (codec and "
          "`DlmsClient` state machine), meterlink against dlms-cosem, and Gurux for the round trip",
          ("--rounds", "1", "--seconds", "0.02", "--passes", "1")),
    Bench("hdlc_push", "HDLC push", "HDLC push notifications/s (frames, segments or general-block-transfer, decrypt, "
          "A-XDR, mapping), meterlink's `HdlcPushReader` and its codec alone against dlms-cosem",
          ("--telegrams", "20", "--rounds", "1")),
    Bench("floods", "Floods", "seconds for `decode mbus` / `decode hdlc` on floods of noise, and the events a flood "
          "hands a link's machine (issue 12 item 10)", ("--rounds", "1", "--scale", "0.02")),
    Bench("image_transfer", "Image transfer", "image bytes/s of a class 18 update over a simulated 9600-baud line, "
          "against the line's physical limit", ("--size", "5000")),
    Bench("machines", "Machines", "per-event dispatch cost of every link machine, the compiled dispatch (issue 21) "
          "against python-statemachine's engine", ("--events", "100", "--rounds", "1")),
    Bench("bsm", "BSM-WS36A", "signed snapshot (and OCMF) verifications/s against a direct `cryptography` verify; "
          "Modbus RTU round trips/s against `simulate bsm`, meterlink against pymodbus's clients",
          ("--rounds", "1", "--seconds", "0.05")),
    Bench("oms", "OMS", "OMS (EN 13757-3, mode 5) telegrams/s, meterlink's own application layer against pymbusparser",
          ("--telegrams", "50", "--rounds", "1")),
    Bench("mep", "MEP", "MEP digests and response decodes/s, and C12.19 poll decodes/s; no peer library exists, "
          "the wire is the yardstick", ("--rounds", "1", "--seconds", "0.05")),
    Bench("gateway", "Gateway scale", "one process with 100-1,000 P1 push links on loopback TCP at 1 telegram/s each: "
          "latency to the hub and MQTT, CPU, RSS, open files; how far one process goes and the fleet layout",
          ("--links", "10", "--seconds", "3", "--warmup", "2")),
)
"""Every benchmark, in the order they run and the index lists them. A new one is one line here."""


def begin(name: str) -> str:
    return f"<!-- bench:{name} begin -->"


def end(name: str) -> str:
    return f"<!-- bench:{name} end -->"


def anchor(section: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", section.lower()).replace(" ", "-")


def replace_block(text: str, name: str, body: str, section: str) -> str:
    """`text` with what lies between `name`'s markers replaced by `body`; a new section at the end if it has none."""
    block = f"{begin(name)}\n{body}\n{end(name)}"
    pattern = re.compile(re.escape(begin(name)) + r".*?" + re.escape(end(name)), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + f"\n\n## {section}\n\n{block}\n"


def index(benches: tuple[Bench, ...]) -> str:
    rows = [f"| [{bench.section}](#{anchor(bench.section)}) | `bench/{bench.name}.py` | {bench.question} |" for bench in benches]
    return "\n".join(["| Section | Script | Question |", "|---|---|---|", *rows])


def machine(started: datetime, quick: bool) -> str:
    return "\n".join([
        f"- date of the latest run: {started:%Y-%m-%d %H:%M} UTC" + (" (quick mode: few, short rounds; the figures mean nothing)"
                                                                   if quick else "") + "; each benchmark's block names its own time",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs (each benchmark runs on one, the latency and BSM "
        "benchmarks' servers on another); the machine is shared, so compare figures within one run",
        f"- load average at start: {load_average()} (1, 5, 15 minutes)",
        f"- Python: {platform.python_implementation()} {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- libraries: {versions(PACKAGES)}",
        f"- meterlink source: {source_state(ROOT, ['meterlink', 'bench/*.py'])}",
    ])


def run_one(bench: Bench, quick: bool) -> tuple[str, bool]:
    """The block for `bench`'s markers, and whether it succeeded."""
    command = [sys.executable, str(BENCH / f"{bench.name}.py"), "--json", *(bench.quick if quick else ())]
    shown = shlex.join(["python", f"bench/{bench.name}.py", *(bench.quick if quick else ())])
    started, load = datetime.now(timezone.utc), load_average()
    clock = time.monotonic()
    print(f"bench: {bench.name} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - clock
    header = (f"*Generated by `bash dev.sh bench{' --quick' if quick else ''}`: `{shown}` at {started:%Y-%m-%d %H:%M} UTC, "
              f"load average at its start {load}, {seconds:.0f} s.*")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        print(f"bench: {bench.name} failed (exit {done.returncode})\n{tail}", file=sys.stderr)
        return f"{header}\n\n**Failed** (exit {done.returncode}):\n\n```\n{tail}\n```", False
    print(f"bench: {bench.name} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    return f"{header}\n\n{tables_markdown(from_json(done.stdout))}", True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all): "
                        + ", ".join(bench.name for bench in BENCHES))
    parser.add_argument("--quick", action="store_true", help="few and short rounds: a smoke check, not figures")
    parser.add_argument("--readme", type=Path, default=README, help="the README to rewrite (default bench/README.md)")
    options = parser.parse_args(argv)
    known = {bench.name: bench for bench in BENCHES}
    unknown = [name for name in options.names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[name] for name in options.names] or list(BENCHES)

    started = datetime.now(timezone.utc)
    text = options.readme.read_text(encoding="utf-8")
    text = replace_block(text, "index", index(BENCHES), "Index")
    text = replace_block(text, "machine", machine(started, options.quick), "Machine")
    failed = []
    for bench in chosen:
        block, ok = run_one(bench, options.quick)
        if not ok:
            failed.append(bench.name)
        text = replace_block(text, bench.name, block, bench.section)
        options.readme.write_text(text, encoding="utf-8")  # after each, so that a long run shows progress
    options.readme.write_text(text, encoding="utf-8")
    print(f"bench: wrote {options.readme}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
