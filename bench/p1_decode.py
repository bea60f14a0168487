#!/usr/bin/env python3
"""P1 telegrams decoded per second: meterlink's P1 codec against dsmr_parser, same telegrams, same run.

Codec against codec: each variant takes the bytes of a telegram as a reader gets them and ends
with a parsed telegram whose CRC-16 was checked. Variants (see bench/README.md):

  meterlink framer           P1Framer().feed(raw): framing + CRC-16/ARC + parse -> TelegramFramed
  meterlink framer+reading   the same, plus P1Telegram.to_reading(received_at), what the adapter
                             does per telegram
  dsmr_parser parse only     TelegramParser(BELGIUM_FLUVIUS).parse(text) on a telegram already
                             cut out and decoded to str (CRC check included: parse validates it)
  dsmr_parser buffer+parse   raw.decode("ascii") -> TelegramBuffer.append -> get_all() -> parse,
                             dsmr_parser's own sans-IO path (what its serial client does per read)

plus the two framing variants again with the whole stream delivered in 64-byte reads.

Before timing, the script checks (untimed) that both decoders accept every telegram, that
dsmr_parser's specification matches every data line, that both agree on a few values, and that
the CRC check is on in both (a corrupted telegram is rejected). It prints markdown tables; timings
are reported, never asserted.

    .venv/bin/python bench/p1_decode.py [--rounds 5] [--seconds 0.3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from dsmr_parser import telegram_specifications
from dsmr_parser.clients.telegram_buffer import TelegramBuffer
from dsmr_parser.exceptions import InvalidChecksumError
from dsmr_parser.parsers import TelegramParser

from meterlink.protocols import p1 as p1_module
from meterlink.protocols.p1 import CrcStatus, P1Framer, TelegramFramed
from meterlink.simulators.p1 import P1MeterModel

from report import Report, Table, add_json_option, describe, emit

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
EMUCS_FILES = ("emucs_p1_1phase.txt", "emucs_p1_3phase.txt")
CHUNK = 64
METER_ZONE = ZoneInfo("Europe/Brussels")  # CET/CEST, as Europe/Amsterdam that dsmr_parser uses
RECEIVED_AT = 1795435200.0  # a fixed wall-clock time stamp for to_reading()


# --- telegrams -------------------------------------------------------------------------------


def load_telegrams() -> list[tuple[str, bytes]]:
    """The two e-MUCs example telegrams plus 48 simulator telegrams (8 seeds x 6 times of day,
    so tariffs, solar export and registers differ)."""
    telegrams = [(name, (DATA / name).read_bytes()) for name in EMUCS_FILES]
    start = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
    for seed in range(1, 9):
        model = P1MeterModel(seed=seed)
        for step in range(6):
            moment = start + timedelta(hours=4 * step, minutes=7 * seed)
            telegrams.append((f"simulator seed={seed} {moment:%H:%M}Z", model.telegram(moment)))
    return telegrams


def data_lines(raw: bytes) -> list[str]:
    """The data lines of a telegram: after the header and blank line, before `!`."""
    text = raw.decode("ascii")
    body = text[: text.rindex("!")]
    return [line for line in body.split("\r\n")[1:] if line]


# --- the timed variants: each decodes the whole set once and returns how many it decoded --------


def meterlink_framer(raws: list[bytes]) -> int:
    framer = P1Framer()
    decoded = 0
    for raw in raws:
        for event in framer.feed(raw):
            if isinstance(event, TelegramFramed) and event.telegram is not None:
                decoded += 1
    return decoded


def meterlink_framer_reading(raws: list[bytes]) -> int:
    framer = P1Framer()
    decoded = 0
    for raw in raws:
        for event in framer.feed(raw):
            if isinstance(event, TelegramFramed) and event.telegram is not None:
                event.telegram.to_reading(RECEIVED_AT)
                decoded += 1
    return decoded


def make_dsmr_parse_only(parser: TelegramParser) -> Callable[[list[str]], int]:
    def dsmr_parse_only(texts: list[str]) -> int:
        decoded = 0
        for text in texts:
            parser.parse(text, throw_ex=True)
            decoded += 1
        return decoded

    return dsmr_parse_only


def make_dsmr_buffer_parse(parser: TelegramParser) -> Callable[[list[bytes]], int]:
    def dsmr_buffer_parse(raws: list[bytes]) -> int:
        buffer = TelegramBuffer()
        decoded = 0
        for raw in raws:
            buffer.append(raw.decode("ascii"))
            for text in buffer.get_all():
                parser.parse(text, throw_ex=True)
                decoded += 1
        return decoded

    return dsmr_buffer_parse


# --- untimed checks: equal work, CRC on -----------------------------------------------------


class CheckFailed(RuntimeError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def _ml_value(telegram, obis: str):
    for value in telegram.values:
        if value.obis == obis:
            return value
    raise CheckFailed(f"meterlink has no {obis}")


def _ml_decimal(telegram, obis: str) -> Decimal:
    value = _ml_value(telegram, obis)
    return Decimal(value.raw).scaleb(value.scaler)


def same_instant(ml_time: str, dsmr_time: datetime) -> bool:
    """meterlink gives the meter's local time as ISO 8601 (without an offset since f20cc5c, with
    one before); dsmr_parser gives UTC, converted from Europe/Amsterdam time with the S/W flag."""
    ours = datetime.fromisoformat(ml_time)
    if ours.tzinfo is not None:
        return ours == dsmr_time
    return ours == dsmr_time.astimezone(METER_ZONE).replace(tzinfo=None)


def verify(telegrams: list[tuple[str, bytes]], parser: TelegramParser) -> list[str]:
    """Both decoders accept every telegram, cover every data line and agree on a few values;
    both reject a corrupted telegram. Returns notes for the report."""
    check(parser.apply_checksum_validation, "dsmr_parser checksum validation is off")
    check(parser.telegram_specification["checksum_support"], "dsmr_parser spec has no checksum support")
    regexes = list(parser.telegram_specification_regexes.values())
    compared = 0
    for name, raw in telegrams:
        events = P1Framer().feed(raw)
        framed = [e for e in events if isinstance(e, TelegramFramed)]
        check(len(framed) == 1, f"{name}: meterlink framed {len(framed)} telegrams")
        frame = framed[0]
        check(frame.crc is CrcStatus.OK and frame.telegram is not None, f"{name}: meterlink {frame.crc} {frame.error}")
        ml = frame.telegram
        lines = data_lines(raw)
        check(len(ml.values) == len(lines), f"{name}: meterlink parsed {len(ml.values)} of {len(lines)} lines")

        text = raw.decode("ascii")
        dsmr = parser.parse(text, throw_ex=True)
        # Every data line is matched by exactly one object of the BELGIUM_FLUVIUS specification,
        # so dsmr_parser parses (and is timed on) every object of the telegram, as meterlink is.
        matched: list[str] = []
        for regex in regexes:
            matched += [m.rstrip("\r\n") for m in regex.findall(text)]
        check(sorted(matched) == sorted(lines), f"{name}: dsmr_parser spec matches {sorted(set(lines) ^ set(matched))} differently")

        pairs = [
            ("1-0:1.8.1.255", dsmr.ELECTRICITY_USED_TARIFF_1.value),
            ("1-0:1.8.2.255", dsmr.ELECTRICITY_USED_TARIFF_2.value),
            ("1-0:2.8.2.255", dsmr.ELECTRICITY_DELIVERED_TARIFF_2.value),
            ("1-0:32.7.0.255", dsmr.INSTANTANEOUS_VOLTAGE_L1.value),
            ("1-0:31.7.0.255", dsmr.INSTANTANEOUS_CURRENT_L1.value),
        ]
        gas = dsmr.get_mbus_device_by_channel(1).MBUS_METER_READING
        pairs.append(("0-1:24.2.3.255", gas.value))
        for obis, expected in pairs:
            got = _ml_decimal(ml, obis)
            check(got == expected, f"{name}: {obis} meterlink {got} != dsmr_parser {expected}")
            compared += 1
        for label, ml_time, dsmr_time in (
            ("0-0:1.0.0", ml.captured_at, dsmr.P1_MESSAGE_TIMESTAMP.value),
            ("0-1:24.2.3 time", _ml_value(ml, "0-1:24.2.3.255").time, gas.datetime),
        ):
            check(same_instant(ml_time, dsmr_time), f"{name}: {label} meterlink {ml_time} != dsmr_parser {dsmr_time}")
        compared += 2

    # The CRC check is on in both paths: change one digit of 1-0:1.8.2, keep the sent CRC.
    name, raw = telegrams[1]
    bad = raw.replace(b"1-0:1.8.2(0000", b"1-0:1.8.2(0009", 1)
    check(bad != raw, "corruption did not apply")
    frame = next(e for e in P1Framer().feed(bad) if isinstance(e, TelegramFramed))
    check(frame.crc is CrcStatus.MISMATCH and frame.telegram is None, f"meterlink accepted a corrupted telegram: {frame.crc}")
    try:
        parser.parse(bad.decode("ascii"), throw_ex=True)
    except InvalidChecksumError:
        pass
    else:
        raise CheckFailed("dsmr_parser accepted a corrupted telegram: its CRC check is off")
    buffer = TelegramBuffer()
    buffer.append(bad.decode("ascii"))
    cut = list(buffer.get_all())
    check(len(cut) == 1, "dsmr_parser TelegramBuffer did not cut the corrupted telegram")
    try:
        parser.parse(cut[0], throw_ex=True)
    except InvalidChecksumError:
        pass
    else:
        raise CheckFailed("dsmr_parser buffer+parse accepted a corrupted telegram")

    # Both framers cut the same telegrams out of the stream in 64-byte reads.
    raws = [raw for _, raw in telegrams]
    chunks = chunked(raws)
    check(meterlink_framer(chunks) == len(raws), "meterlink framer lost telegrams in 64-byte reads")
    check(make_dsmr_buffer_parse(parser)(chunks) == len(raws), "dsmr_parser buffer lost telegrams in 64-byte reads")

    return [
        f"{len(telegrams)} telegrams ({len(EMUCS_FILES)} e-MUCs examples + {len(telegrams) - len(EMUCS_FILES)} simulator), "
        f"{min(len(r) for r in raws)}-{max(len(r) for r in raws)} bytes, "
        f"{min(len(data_lines(r)) for r in raws)}-{max(len(data_lines(r)) for r in raws)} data lines each",
        "every data line parsed by both (dsmr_parser: each line matched by exactly one BELGIUM_FLUVIUS object)",
        f"{compared} values agree (1-0:1.8.1, 1-0:1.8.2, 1-0:2.8.2, 1-0:32.7.0, 1-0:31.7.0, 0-1:24.2.3 value and time, 0-0:1.0.0)",
        "CRC check on in both: a telegram with one digit changed is rejected "
        "(meterlink CrcStatus.MISMATCH; dsmr_parser InvalidChecksumError, parse only and buffer+parse)",
    ]


def chunked(raws: list[bytes], size: int = CHUNK) -> list[bytes]:
    stream = b"".join(raws)
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# --- timing ---------------------------------------------------------------------------------


def calibrate(run: Callable[[], int], target: float) -> int:
    """Passes over the telegram set so that one measurement lasts about `target` seconds."""
    run()  # warm-up
    started = time.perf_counter()
    run()
    once = time.perf_counter() - started
    return max(1, math.ceil(target / once))


def measure(run: Callable[[], int], passes: int, per_pass: int) -> float:
    decoded = 0
    started = time.perf_counter()
    for _ in range(passes):
        decoded += run()
    elapsed = time.perf_counter() - started
    if decoded != passes * per_pass:
        raise CheckFailed(f"decoded {decoded} telegrams, expected {passes * per_pass}")
    return decoded / elapsed


def machine() -> list[tuple[str, str]]:
    return describe(Path(p1_module.__file__).resolve().parents[2],
                    ["meterlink/protocols/p1.py", "meterlink/protocols/crc.py", "meterlink/protocols/readings.py"],
                    ("meterlink", "dsmr-parser"))


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--rounds", type=int, default=5, help="measurements per variant (default 5)")
    args.add_argument("--seconds", type=float, default=0.3, help="length of one measurement (default 0.3 s)")
    args.add_argument("--profile", action="store_true", help="also cProfile the meterlink framer+reading path")
    add_json_option(args)
    options = args.parse_args()

    info = machine()  # before the run, so the load average is the one at start
    telegrams = load_telegrams()
    parser = TelegramParser(telegram_specifications.BELGIUM_FLUVIUS)
    notes = verify(telegrams, parser)

    raws = [raw for _, raw in telegrams]
    texts = [raw.decode("ascii") for raw in raws]
    chunks = chunked(raws)
    dsmr_parse_only = make_dsmr_parse_only(parser)
    dsmr_buffer_parse = make_dsmr_buffer_parse(parser)
    variants: list[tuple[str, str, Callable[[], int]]] = [
        ("meterlink framer", "whole telegram per feed", lambda: meterlink_framer(raws)),
        ("meterlink framer + to_reading", "whole telegram per feed", lambda: meterlink_framer_reading(raws)),
        ("dsmr_parser parse only", "str already cut out", lambda: dsmr_parse_only(texts)),
        ("dsmr_parser buffer + parse", "whole telegram per append", lambda: dsmr_buffer_parse(raws)),
        ("meterlink framer", f"{CHUNK}-byte reads", lambda: meterlink_framer(chunks)),
        ("dsmr_parser buffer + parse", f"{CHUNK}-byte reads", lambda: dsmr_buffer_parse(chunks)),
    ]
    per_pass = len(telegrams)
    passes = [calibrate(run, options.seconds) for _, _, run in variants]
    rates: list[list[float]] = [[] for _ in variants]
    # Each meterlink variant is timed right next to the dsmr_parser variant it is compared with,
    # and the order flips every round, so that load from other processes (which comes and goes)
    # hits both sides of a comparison alike; the per-round ratios below rely on that.
    order = [0, 3, 1, 2, 4, 5]
    for round_number in range(options.rounds):
        for index in order if round_number % 2 == 0 else order[::-1]:
            rates[index].append(measure(variants[index][2], passes[index], per_pass))

    best = [max(r) for r in rates]
    median = [statistics.median(r) for r in rates]
    worst = [min(r) for r in rates]
    notes = [f"checked: {note}" for note in notes]
    notes.append(f"{options.rounds} rounds; one measurement = {options.seconds:g} s of passes over the set; "
                 "telegrams/s = telegrams decoded / time.perf_counter() elapsed; gc on")
    throughput = Table("", ["variant", "input", "best telegrams/s", "median telegrams/s", "worst telegrams/s",
                            "median µs/telegram"],
                       [[name, feed, f"{best[index]:,.0f}", f"{median[index]:,.0f}", f"{worst[index]:,.0f}",
                         f"{1e6 / median[index]:,.0f}"] for index, (name, feed, _) in enumerate(variants)], numeric=4)
    comparisons = [
        ("meterlink framer vs dsmr_parser buffer + parse (codec vs codec)", 0, 3),
        ("meterlink framer vs dsmr_parser parse only", 0, 2),
        ("meterlink framer + to_reading vs dsmr_parser buffer + parse", 1, 3),
        ("meterlink framer + to_reading vs dsmr_parser parse only", 1, 2),
        (f"meterlink framer vs dsmr_parser buffer + parse, {CHUNK}-byte reads", 4, 5),
    ]
    rows = []
    for label, ours, theirs in comparisons:
        paired = [a / b for a, b in zip(rates[ours], rates[theirs])]
        rows.append([label, f"{best[ours] / best[theirs]:.2f}x", f"{median[ours] / median[theirs]:.2f}x",
                     f"{statistics.median(paired):.2f}x", f"{min(paired):.2f}x-{max(paired):.2f}x"])
    ratios = Table("", ["meterlink against dsmr_parser (target: >= 1x, aim 3x)", "best / best", "median / median",
                        "median of per-round ratios", "per-round range"], rows, numeric=4)
    emit(Report("p1_decode", f"P1 decode throughput ({datetime.now().astimezone():%Y-%m-%d %H:%M %Z})", info, notes,
                [throughput, ratios]), options.json)

    if options.profile and not options.json:
        profile(raws)
    return 0


def profile(raws: list[bytes], passes: int = 40) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(passes):
        meterlink_framer_reading(raws)
    profiler.disable()
    print(f"\n## cProfile: meterlink framer + to_reading, {passes} x {len(raws)} telegrams\n")
    print("```")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(15)
    print("```")


if __name__ == "__main__":
    sys.exit(main())
