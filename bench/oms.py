#!/usr/bin/env python3
"""OMS telegrams decoded per second: meterlink's own M-Bus application layer against pymbusparser.

pymbusparser (MIT, Rust core) was evaluated for the record layer (issue 20) and not chosen; see
bench/README.md, section OMS. Same telegrams, same process, same run:

  wireless mode 5   the Apator Elf 2 telegram of wmbusmeters' test suite (tests/data), key given:
                    meterlink  parse_frame -> decode_application (AES-CBC, 2F2F check, records)
                               -> oms.to_reading
                    pymbusparser  parse(bytes, key=..., include_enrichment=False)
  records only      Netz OÖ's AMIS plaintext as the specification prints it (ten records):
                    meterlink  parse_records;  pymbusparser  parse_records
  AMIS frame        the specification's wired SND_UD (CI 0x5B), meterlink only: pymbusparser 0.5.3
                    reads the frame but does not decrypt a CI 0x5B long header (no records)

Before timing, the script checks (untimed) that both give the same values for the telegram and the
records. Timings are reported, never asserted.

    .venv/bin/python bench/oms.py [--telegrams 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pymbusparser

from meterlink.protocols.mbus import MBusFramer
from meterlink.protocols.mbus_app import decode_application, parse_records
from meterlink.protocols.oms import to_reading
from meterlink.protocols.wmbus import parse_frame

from report import Report, Table, add_json_option, emit

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def load() -> tuple[bytes, bytes, bytes, bytes, bytes]:
    amis = json.loads((DATA / "amis_mbus_netzooe_spec.json").read_text())
    elf2 = next(t for t in json.loads((DATA / "wmbus_wmbusmeters_keyed.json").read_text())["telegrams"] if t["name"] == "elf2")
    return (bytes.fromhex(elf2["hex"]), bytes.fromhex(elf2["key"]), bytes.fromhex(amis["plaintext_published"]),
            bytes.fromhex(amis["frame_hex"]), bytes.fromhex(amis["key"]))


def ours_wireless(frame: bytes, key: bytes) -> list:
    link = parse_frame(frame)
    return list(to_reading(decode_application(link.apdu, link.address, [key]), "wmbus", None, link.meter_id).values)


def theirs_wireless(frame: bytes, key: bytes) -> list:
    return pymbusparser.parse(frame, key=key, include_enrichment=False)["records"]


def ours_amis(stream: bytes, key: bytes) -> list:
    (frame,) = MBusFramer().feed(stream)
    apdu = bytes((frame.ci,)) + frame.data
    return list(to_reading(decode_application(apdu, None, [key]), "mbus", None, None).values)


def check(frame: bytes, key: bytes, plaintext: bytes) -> None:
    """Both decoders read the same numbers (untimed)."""
    ours = [v for v in ours_wireless(frame, key) if isinstance(v.value, (int, float)) and v.raw is not None]
    theirs = [r for r in theirs_wireless(frame, key) if r["value"]["kind"] == "decimal"]
    assert [Decimal(v.raw).scaleb(v.scaler) for v in ours] == [Decimal(r["value"]["value"]) for r in theirs], "wireless"
    mine, _ = parse_records(plaintext)
    other = pymbusparser.parse_records(plaintext)
    assert [r.header.hex(" ").upper() for r in mine] == [r["header_hex"] for r in other], "records"
    assert not pymbusparser.parse(frame, key=bytes(16))["decode_state"] == "complete"


def once(work: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - start)


def paired(ours: Callable[[], object], theirs: Callable[[], object] | None, count: int, rounds: int) -> tuple[float, float | None]:
    """Median per second of each over `rounds` rounds, the two measured next to each other and the
    order flipped every round, so that load from other processes hits both alike."""
    mine: list[float] = []
    other: list[float] = []
    for number in range(rounds):
        pairs = [(mine, ours), (other, theirs)]
        for out, work in pairs if number % 2 == 0 else pairs[::-1]:
            if work is not None:
                out.append(once(work, count))
    return statistics.median(mine), statistics.median(other) if other else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--telegrams", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    add_json_option(parser)
    args = parser.parse_args()
    frame, key, plaintext, amis_frame, amis_key = load()
    check(frame, key, plaintext)
    n, r = args.telegrams, args.rounds
    rows = [
        ("wireless mode 5 (Elf 2), frame to values",
         *paired(lambda: ours_wireless(frame, key), lambda: theirs_wireless(frame, key), n, r)),
        ("records only (AMIS plaintext, 10 records)",
         *paired(lambda: parse_records(plaintext), lambda: pymbusparser.parse_records(plaintext), n, r)),
        ("AMIS SND_UD CI 0x5B, frame to reading", *paired(lambda: ours_amis(amis_frame, amis_key), None, n, r)),
    ]
    table = Table(f"{n} telegrams x {r} rounds (median), meterlink's and pymbusparser's next to each other, "
                  "the order flipped every round:",
                  ["what", "meterlink /s", "pymbusparser /s", "meterlink / pymbusparser"],
                  [[what, f"{ours:,.0f}", "(does not decrypt CI 0x5B)", ""] if theirs is None else
                   [what, f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}"] for what, ours, theirs in rows], numeric=3)
    emit(Report("oms", "OMS benchmark", [("packages", f"pymbusparser {pymbusparser.__version__}"),
                                         ("Python", f"{platform.python_version()} on {platform.machine()}")],
                ["checked: both give the same values for the Elf 2 telegram and the same record headers for the AMIS plaintext; "
                 "pymbusparser does not report a complete decode with a wrong key"],
                [table]), args.json)


if __name__ == "__main__":
    main()
