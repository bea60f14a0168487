#!/usr/bin/env python3
"""M-Bus push telegrams decoded per second: meterlink against dlms-cosem, same telegrams, same run.

A telegram is what a Kaifa meter sends: a DLMS general-glo-ciphering APDU split over two M-Bus
long frames. "Decoded" means frame join + AES-GCM + A-XDR + mapping to a reading. Variants (see
bench/README.md, section M-Bus):

  meterlink adapter      MBusFramer.feed(bytes) -> MBusAdapter.handle(event) per frame ->
                         take_actions(): the state machine the actor runs (acks, segment joining,
                         replay check by frame counter, decrypt, data-notification, to_reading)
  meterlink pipeline     MBusFramer.feed(bytes) -> join the segments by CI -> decode_push(): the
                         same codec work without the state machine
  dlms-cosem             MBusFramer.feed(bytes) -> the same join (dlms-cosem has no M-Bus framing),
                         then GeneralGlobalCipher.from_bytes -> to_plain_apdu(key, auth key) ->
                         DataNotification.from_bytes -> utils.parse_as_dlms_data(body) -> a small
                         mapping to (OBIS, value, unit) like meterlink's reading

dlms-cosem decrypts only authenticated telegrams (it always takes the last 12 bytes as the tag),
so it runs on tagged telegrams (SC 0x31); the tagless ones (SC 0x21, what Austrian Kaifa meters
send) are timed for meterlink alone. Then the APDU alone (no framing), and the A-XDR decode of the
real captures' plaintext (TINETZ, gh905, Vorarlberg). Last, the latency from feeding the last
frame's bytes to the Publish action of MBusAdapter, per telegram.

Before timing, the script checks (untimed) that both decoders give the same OBIS codes, raw values,
scalers and units for every telegram, and that both reject a telegram with a flipped tag byte.
Timings are reported, never asserted. dlms-cosem (BSL-licensed) is a benchmark peer only:
`.venv/bin/pip install dlms-cosem`; meterlink and its tests never import it.

    .venv/bin/python bench/mbus_decode.py [--telegrams 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from dlms_cosem.exceptions import DecryptionError
from dlms_cosem.protocol.xdlms import DataNotification, GeneralGlobalCipher
from dlms_cosem.time import datetime_from_bytes
from dlms_cosem.utils import parse_as_dlms_data

from meterlink.machines.base import Publish
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, decrypt, parse_ciphered
from meterlink.protocols.mbus import LongFrame, MBusFramer, is_last_segment, segment_payload
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel

from report import Report, Table, add_json_option, describe, emit

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
AUTH_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TAGGED_KEYS = [CipherKeys(DEMO_KEY, AUTH_KEY)]
TAGLESS_KEYS = [CipherKeys(DEMO_KEY)]
UNITS = {27: "W", 30: "Wh", 32: "varh", 33: "A", 35: "V"}  # the units these telegrams carry
START = datetime(2026, 11, 23, 0, 0)


class CheckFailed(RuntimeError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- telegrams ---------------------------------------------------------------------------------


def telegrams(count: int, auth_key: bytes | None) -> list[list[bytes]]:
    """`count` telegrams (frame lists) with rising frame counters, from 8 simulated meters' worth
    of values (seeds) across a day."""
    out = []
    models = [KaifaMeterModel(auth_key=auth_key, seed=seed) for seed in range(1, 9)]
    counter = 0x10000
    for n in range(count):
        model = models[n % len(models)]
        model.frame_counter = counter
        counter += 1
        out.append(model.frames(START + timedelta(seconds=37 * n)))
    return out


def plaintexts() -> list[tuple[str, bytes]]:
    tinetz = json.loads((DATA / "kaifa_mbus_tinetz_doc.json").read_text())["expected_values_if_given"]
    gh905 = json.loads((DATA / "kaifa_mbus_ma309_pl_gh905.json").read_text())["expected_values_if_given"]
    vorarlberg = json.loads((DATA / "kaifa_vorarlberg_plaintext_gh539.json").read_text())["hex_or_text"]
    return [
        ("TINETZ", bytes.fromhex(tinetz["decrypted_apdu_hex_published"])),
        ("gh905", bytes.fromhex(gh905["decrypted_apdu_hex_verified_by_us"])),
        ("Vorarlberg", bytes.fromhex(vorarlberg)),
    ]


# --- the decoders ------------------------------------------------------------------------------


def join(framer: MBusFramer, data: bytes, parts: list[bytes]) -> list[bytes]:
    """Frames in, complete APDUs out (segments joined in CI order; what both pipelines share)."""
    apdus = []
    for event in framer.feed(data):
        if isinstance(event, LongFrame):
            if event.ci & 0x0F == 0:
                parts.clear()
            parts.append(segment_payload(event))
            if is_last_segment(event):
                apdus.append(b"".join(parts))
                parts.clear()
    return apdus


def obis_text(raw: bytes) -> str:
    return f"{raw[0]}-{raw[1]}:{raw[2]}.{raw[3]}.{raw[4]}.{raw[5]}"


def cosem_reading(apdu_plain: bytes) -> dict:
    """dlms-cosem: data-notification + A-XDR, then the mapping meterlink's to_reading does."""
    notification = DataNotification.from_bytes(apdu_plain)
    items = parse_as_dlms_data(notification.body)
    values = []
    meter_id = captured_at = None
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, (bytes, bytearray)) and len(item) == 6 and index + 1 < len(items):
            obis, raw = obis_text(item), items[index + 1]
            if obis == "0-0:1.0.0.255":
                captured_at = datetime_from_bytes(raw)[0].replace(tzinfo=None).isoformat()
                raw = captured_at
            values.append((obis, raw, None, None, None))
            index += 2
            continue
        if isinstance(item, list) and len(item) >= 2:
            obis, raw = obis_text(item[0]), item[1]
            if len(item) >= 3:
                scaler, unit = item[2]
                values.append((obis, raw * 10**scaler, UNITS.get(unit), scaler, unit))
            else:
                text = bytes(raw).decode("ascii")
                values.append((obis, text, None, None, None))
                if obis == "0-0:96.1.0.255":
                    meter_id = text
        index += 1
    return {"meter_id": meter_id, "captured_at": captured_at, "values": values}


def cosem_decode(apdu: bytes, key: bytes, auth_key: bytes) -> dict:
    cipher = GeneralGlobalCipher.from_bytes(apdu)
    return cosem_reading(cipher.to_plain_apdu(key, auth_key))


# --- the timed variants: each decodes the whole set once and returns how many it decoded --------


def meterlink_adapter(streams: list[bytes], keys: list[CipherKeys]) -> int:
    framer = MBusFramer()
    machine = MBusAdapter(keys=lambda: keys)
    decoded = 0
    for data in streams:
        for event in framer.feed(data):
            machine.handle(event, 1795435200.0)
        for action in machine.take_actions():
            if isinstance(action, Publish):
                decoded += 1
    return decoded


def meterlink_pipeline(streams: list[bytes], keys: list[CipherKeys]) -> int:
    framer = MBusFramer()
    parts: list[bytes] = []
    last = None
    decoded = 0
    for data in streams:
        for apdu in join(framer, data, parts):
            result = decode_push(apdu, keys, last, "mbus", 1795435200.0)
            if result.outcome is Outcome.DECODED:
                last = result.frame_counter
                decoded += 1
    return decoded


def dlms_cosem_pipeline(streams: list[bytes]) -> int:
    framer = MBusFramer()
    parts: list[bytes] = []
    decoded = 0
    for data in streams:
        for apdu in join(framer, data, parts):
            cosem_decode(apdu, DEMO_KEY, AUTH_KEY)
            decoded += 1
    return decoded


def meterlink_apdus(apdus: list[bytes], keys: list[CipherKeys]) -> int:
    return sum(decode_push(apdu, keys, None, "mbus", 1795435200.0).outcome is Outcome.DECODED for apdu in apdus)


def dlms_cosem_apdus(apdus: list[bytes]) -> int:
    for apdu in apdus:
        cosem_decode(apdu, DEMO_KEY, AUTH_KEY)
    return len(apdus)


def meterlink_axdr(plains: list[bytes], mapping: bool) -> int:
    for plain in plains:
        notification = parse_notification(plain)
        if mapping:
            to_reading(notification, "mbus", None)
    return len(plains)


def dlms_cosem_axdr(plains: list[bytes], mapping: bool) -> int:
    for plain in plains:
        if mapping:
            cosem_reading(plain)
        else:
            parse_as_dlms_data(DataNotification.from_bytes(plain).body)
    return len(plains)


# --- untimed checks ----------------------------------------------------------------------------


def comparable_meterlink(reading) -> list[tuple]:
    return [(v.obis, v.raw if v.raw is not None else v.value, v.scaler, v.unit_code) for v in reading.values]


def comparable_cosem(reading: dict) -> list[tuple]:
    out = []
    for obis, value, _unit, scaler, unit_code in reading["values"]:
        raw = round(value / 10**scaler) if scaler is not None else value
        out.append((obis, raw, scaler, unit_code))
    return out


def verify(tagged: list[list[bytes]], tagless: list[list[bytes]], plains: list[tuple[str, bytes]]) -> list[str]:
    apdus = [join(MBusFramer(), b"".join(frames), []) for frames in tagged]
    check(all(len(a) == 1 for a in apdus), "the shared join did not find one APDU per telegram")
    for (apdu,) in apdus:
        ours = decode_push(apdu, TAGGED_KEYS, None, "mbus", None)
        check(ours.outcome is Outcome.DECODED, f"meterlink: {ours.outcome} {ours.detail}")
        theirs = cosem_decode(apdu, DEMO_KEY, AUTH_KEY)
        check(comparable_meterlink(ours.reading) == comparable_cosem(theirs), "the decoders disagree on a tagged telegram")
        check(theirs["meter_id"] == ours.reading.meter_id and theirs["captured_at"] == ours.reading.captured_at,
              "the decoders disagree on meter id or clock")
    for name, plain in plains:
        check(comparable_meterlink(to_reading(parse_notification(plain), "mbus", None)) == comparable_cosem(cosem_reading(plain)),
              f"the decoders disagree on the {name} plaintext")
    # Both check the tag: flip one byte of it.
    (apdu,) = apdus[0]
    flipped = apdu[:-3] + bytes((apdu[-3] ^ 0x01,)) + apdu[-2:]
    # A flipped tag byte with both keys set is the authentication key's fault (or the key's).
    check(decode_push(flipped, TAGGED_KEYS, None, "mbus", None).outcome in (Outcome.WRONG_KEY, Outcome.WRONG_AUTH_KEY),
          "meterlink accepted a flipped tag")
    try:
        cosem_decode(flipped, DEMO_KEY, AUTH_KEY)
    except DecryptionError:
        pass
    else:
        raise CheckFailed("dlms-cosem accepted a flipped tag")
    # dlms-cosem cannot read a tagless telegram: it takes the last 12 bytes as a tag.
    (plain_apdu,) = join(MBusFramer(), b"".join(tagless[0]), [])
    try:
        cosem_decode(plain_apdu, DEMO_KEY, AUTH_KEY)
        tagless_note = "dlms-cosem decoded a tagless telegram (unexpected)"
    except DecryptionError:
        tagless_note = "dlms-cosem rejects a tagless (SC 0x21) telegram: DecryptionError (no tag to check)"
    check(meterlink_pipeline([b"".join(f) for f in tagless], TAGLESS_KEYS) == len(tagless), "meterlink lost a tagless telegram")
    check(meterlink_adapter([b"".join(f) for f in tagless], TAGLESS_KEYS) == len(tagless), "the adapter lost a tagless telegram")
    sizes = sorted({len(b"".join(f)) for f in tagged + tagless})
    return [
        f"{len(tagged)} tagged (SC 0x31) and {len(tagless)} tagless (SC 0x21) simulator telegrams, two long frames each, "
        f"{sizes[0]}-{sizes[-1]} bytes, 16 objects (clock, 2 texts, 13 registers with scaler and unit)",
        f"every tagged telegram: both decoders give the same OBIS codes, raw values, scalers, units, meter id and clock; "
        f"so do the {len(plains)} real plaintexts ({', '.join(n for n, _ in plains)})",
        "tag checked by both: a flipped tag byte is rejected (meterlink WRONG_KEY, dlms-cosem DecryptionError)",
        tagless_note,
    ]


# --- timing ------------------------------------------------------------------------------------


def repeat(run: Callable[[], int], expected: int, minimum: float = 0.2) -> Callable[[], float]:
    """A measurement of at least `minimum` seconds (small sets are run several times over)."""
    started = time.perf_counter()
    run()
    once = max(time.perf_counter() - started, 1e-6)
    passes = max(1, int(minimum / once) + 1)

    def measured() -> float:
        started = time.perf_counter()
        for _ in range(passes):
            check(run() == expected, "a pass lost telegrams")
        return passes * expected / (time.perf_counter() - started)
    return measured


def latencies(frame_lists: list[list[bytes]], keys: list[CipherKeys]) -> list[float]:
    """Seconds from feeding the last frame's bytes to the Publish action, per telegram."""
    gc.collect()  # start each series from the same heap (the timed variants before leave garbage)
    framer = MBusFramer()
    machine = MBusAdapter(keys=lambda: keys)
    out = []
    for frames in frame_lists:
        for frame in frames[:-1]:
            for event in framer.feed(frame):
                machine.handle(event, 0.0)
        machine.take_actions()
        started = time.perf_counter_ns()
        for event in framer.feed(frames[-1]):
            machine.handle(event, 0.0)
        published = any(isinstance(a, Publish) for a in machine.take_actions())
        elapsed = time.perf_counter_ns() - started
        check(published, "a telegram was not published")
        out.append(elapsed / 1e9)
    return out


def stages(apdus: list[bytes]) -> list[tuple[str, float]]:
    """Microseconds per telegram of each step, best of 5 (where the time goes)."""
    keys = TAGGED_KEYS[0]
    plains = [decrypt(parse_ciphered(apdu), keys.encryption, keys.authentication) for apdu in apdus]
    notifications = [parse_notification(plain) for plain in plains]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("meterlink parse_ciphered", lambda: [parse_ciphered(a) for a in apdus]),
        ("meterlink parse_ciphered + decrypt (AES-GCM)", lambda: [decrypt(parse_ciphered(a), keys.encryption, keys.authentication) for a in apdus]),
        ("meterlink parse_notification (A-XDR)", lambda: [parse_notification(p) for p in plains]),
        ("meterlink to_reading (mapping)", lambda: [to_reading(n, "mbus", None) for n in notifications]),
        ("dlms-cosem GeneralGlobalCipher + to_plain_apdu", lambda: [GeneralGlobalCipher.from_bytes(a).to_plain_apdu(DEMO_KEY, AUTH_KEY) for a in apdus]),
        ("dlms-cosem DataNotification + parse_as_dlms_data", lambda: [parse_as_dlms_data(DataNotification.from_bytes(p).body) for p in plains]),
        ("dlms-cosem DataNotification + parse_as_dlms_data + mapping", lambda: [cosem_reading(p) for p in plains]),
    ]
    out = []
    for label, run in steps:
        best = min(timeit.repeat(run, number=1, repeat=5))
        out.append((label, best / len(apdus) * 1e6))
    return out


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine_info() -> list[tuple[str, str]]:
    return describe(Path(decode_push.__code__.co_filename).resolve().parents[3], ["meterlink"],
                    ("meterlink", "dlms-cosem", "cryptography", "python-statemachine"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--telegrams", type=int, default=1000, help="telegrams per set (default 1000)")
    parser.add_argument("--rounds", type=int, default=7, help="measurements per variant (default 7)")
    add_json_option(parser)
    options = parser.parse_args()
    info = machine_info()
    tagged = telegrams(options.telegrams, AUTH_KEY)
    tagless = telegrams(options.telegrams, None)
    plains = plaintexts()
    notes = verify(tagged[:200], tagless[:20], plains)
    tagged_streams = [b"".join(frames) for frames in tagged]
    tagless_streams = [b"".join(frames) for frames in tagless]
    tagged_apdus = [join(MBusFramer(), data, [])[0] for data in tagged_streams]
    plain_bytes = [plain for _, plain in plains]
    n, p = len(tagged), len(plain_bytes)

    variants: list[tuple[str, str, str, Callable[[], float]]] = [
        ("tagged", "meterlink adapter (framer + MBusAdapter)", "telegram bytes", repeat(lambda: meterlink_adapter(tagged_streams, TAGGED_KEYS), n)),
        ("tagged", "meterlink pipeline (framer + join + decode_push)", "telegram bytes", repeat(lambda: meterlink_pipeline(tagged_streams, TAGGED_KEYS), n)),
        ("tagged", "dlms-cosem (framer + join by meterlink)", "telegram bytes", repeat(lambda: dlms_cosem_pipeline(tagged_streams), n)),
        ("tagged", "meterlink decode_push", "joined APDU", repeat(lambda: meterlink_apdus(tagged_apdus, TAGGED_KEYS), n)),
        ("tagged", "dlms-cosem GGC + decrypt + notification + A-XDR + mapping", "joined APDU", repeat(lambda: dlms_cosem_apdus(tagged_apdus), n)),
        ("tagless", "meterlink adapter (framer + MBusAdapter)", "telegram bytes", repeat(lambda: meterlink_adapter(tagless_streams, TAGLESS_KEYS), n)),
        ("tagless", "meterlink pipeline (framer + join + decode_push)", "telegram bytes", repeat(lambda: meterlink_pipeline(tagless_streams, TAGLESS_KEYS), n)),
        ("plaintext", "meterlink parse_notification + to_reading", "real plaintexts", repeat(lambda: meterlink_axdr(plain_bytes, True), p)),
        ("plaintext", "dlms-cosem DataNotification + parse_as_dlms_data + mapping", "real plaintexts", repeat(lambda: dlms_cosem_axdr(plain_bytes, True), p)),
        ("plaintext", "meterlink parse_notification", "real plaintexts", repeat(lambda: meterlink_axdr(plain_bytes, False), p)),
        ("plaintext", "dlms-cosem DataNotification + parse_as_dlms_data", "real plaintexts", repeat(lambda: dlms_cosem_axdr(plain_bytes, False), p)),
    ]
    rates: list[list[float]] = [[] for _ in variants]
    # Each meterlink variant runs right next to the dlms-cosem variant it is compared with, and the
    # order flips every round, so that load from other processes hits both sides alike.
    order = list(range(len(variants)))
    for round_number in range(options.rounds):
        for index in order if round_number % 2 == 0 else order[::-1]:
            rates[index].append(variants[index][3]())
    pairs = {1: 2, 0: 2, 3: 4, 7: 8, 9: 10}  # meterlink variant -> dlms-cosem variant
    ratios = {mine: [a / b for a, b in zip(rates[mine], rates[peer])] for mine, peer in pairs.items()}
    steps = stages(tagged_apdus[:300])
    lat_tagged = latencies(tagged, TAGGED_KEYS)
    lat_tagless = latencies(tagless, TAGLESS_KEYS)

    notes = [f"checked: {note}" for note in notes]
    notes.append(f"{options.rounds} rounds of {n} telegrams (or {p} plaintexts) per variant; best and median of the rounds")
    throughput = Table("Telegrams (or plaintexts) per second:", ["set", "variant", "input", "best /s", "median /s"],
                       [[group, name, given, f"{max(values):,.0f}", f"{statistics.median(values):,.0f}"]
                        for (group, name, given, _), values in zip(variants, rates)], numeric=2)
    against = Table("meterlink / dlms-cosem, per round (same round, neighbouring runs):",
                    ["meterlink variant", "against", "median ratio", "min", "max"],
                    [[f"{variants[mine][0]}: {variants[mine][1]}", variants[pairs[mine]][1],
                      f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"]
                     for mine, values in ratios.items()], numeric=3)
    where = Table(f"Where the time goes: µs per tagged telegram, best of 5 passes over {min(300, n)} APDUs:",
                  ["step", "µs"], [[label, f"{micros:,.1f}"] for label, micros in steps], numeric=1)
    latency = Table("Latency, last frame's bytes fed -> Publish (MBusAdapter, sans-IO), per telegram:",
                    ["telegrams", "count", "p50", "p99", "max"],
                    [[label, str(len(values)), f"{percentile(values, 0.5) * 1e6:,.0f} µs",
                      f"{percentile(values, 0.99) * 1e6:,.0f} µs", f"{max(values) * 1e6:,.0f} µs"]
                     for label, values in (("tagged SC 0x31", lat_tagged), ("tagless SC 0x21", lat_tagless))], numeric=4)
    emit(Report("mbus_decode", f"M-Bus decode benchmark, {datetime.now():%Y-%m-%d %H:%M}", info, notes,
                [throughput, against, where, latency]), options.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
