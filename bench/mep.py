#!/usr/bin/env python3
"""MEP: digests and decodes per second (issue 24, "bench/"). See bench/README.md, section "MEP".

No peer library implements the MEP digest, so there is nothing to run beside meterlink; the figure
to compare with is the wire: at 9600 8N1 a 476-byte message takes about 0.55 s to arrive.

  request             encode_request: the C12.18 partial read, sequence number, digest (appendix A)
  guide response      decode_response of RC4 Example 1's BT23 answer (44 bytes), digest checked
  largest response    decode_response of a 465-byte table read, digest checked
  poll decode         decode_bt23 + decode_bt28 + decode_bt52 + mep_reading of the simulated meter's tables

Checks before timing: the request and response digests are the guide's (key 01 x 16).

    .venv/bin/python bench/mep.py [--rounds 5] [--seconds 0.4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from meterlink.protocols.c1219 import BT21, BT23, BT28, BT52, decode_bt21, decode_bt23, decode_bt28, decode_bt52, mep_reading
from meterlink.protocols.mep import ReadRequest, TableData, decode_response, encode_request, encode_response
from meterlink.simulators.mep import SUMMATION_SOURCES, VALUE_SOURCES, MepMeter

from report import Report, Table, add_json_option, emit

KEY = bytes([1]) * 16
BAUD = 9600
GUIDE = [bytes.fromhex(line) for line in (Path(__file__).parent.parent / "tests/data/mep_guide_rc4_examples.txt")
         .read_text().splitlines() if line.strip() and not line.startswith("#")]
GUIDE_REQUEST, GUIDE_RESPONSE = GUIDE[2], GUIDE[3]
"""RC4 Example 1's second request and its BT23 answer."""


def rate(work: Callable[[], object], seconds: float, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                work()
            count += 50
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4)
    add_json_option(parser)
    args = parser.parse_args()

    request = ReadRequest(23, 44, 0)
    sent = encode_request(request, 0x77635B91, KEY)
    assert sent.message == GUIDE_REQUEST
    assert decode_response(GUIDE_RESPONSE[2:], sent, KEY) == TableData(GUIDE_RESPONSE[5:-8])
    big_sent = encode_request(ReadRequest(2064, 465, 0), 7, KEY)
    big = encode_response(TableData(bytes(range(256)) + bytes(209)), big_sent, KEY)
    meter = MepMeter(clock=lambda: 0.0, wallclock=lambda: 1_796_356_800.0)
    tables = meter.tables()
    dims = decode_bt21(tables[BT21])

    def poll() -> object:
        return mep_reading("MTR3000-0042", SUMMATION_SOURCES, decode_bt23(tables[BT23], dims), VALUE_SOURCES,
                           decode_bt28(tables[BT28], dims), decode_bt52(tables[BT52]), None)

    rows = []
    for name, work, wire in (("request: C12.18 partial read + sequence number + digest",
                              lambda: encode_request(request, 0x77635B91, KEY), len(sent.message)),
                             ("the guide's 44-byte BT23 response, digest checked",
                              lambda: decode_response(GUIDE_RESPONSE[2:], sent, KEY), len(GUIDE_RESPONSE)),
                             ("a 465-byte response (the largest), digest checked", lambda: decode_response(big[2:], big_sent, KEY),
                              len(big)),
                             ("poll decode: BT23 + BT28 + BT52 into a reading", poll, None)):
        per_second = rate(work, args.seconds, args.rounds)
        rows.append([name, f"{per_second:,.0f}", f"{1e3 / per_second:.3f}",
                     f"{wire * 10 / BAUD * 1e3:,.1f}" if wire is not None else "(no message)"])
    table = Table(f"Median of {args.rounds} rounds of {args.seconds} s; the yardstick is the message's time on the wire at "
                  f"{BAUD} 8N1 (no peer library implements MEP):",
                  ["meterlink variant", "per second", "ms each", f"the message on the wire at {BAUD} 8N1, ms"], rows, numeric=3)
    emit(Report("mep", "MEP benchmark", notes=["checked: the request and the response digest of the guide's RC4 Example 1 (key 01×16)"],
                tables=[table]), args.json)

if __name__ == "__main__":
    main()
