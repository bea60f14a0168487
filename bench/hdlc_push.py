#!/usr/bin/env python3
"""HDLC push notifications decoded per second: meterlink against dlms-cosem, same telegrams, same run.

A telegram is what a pushing meter sends: a DLMS data-notification in HDLC UI frames, in one frame,
in segments (the segmentation bit) or in general-block-transfer blocks, in clear or
general-glo-ciphering with a tag. "Decoded" means frames checked (HCS, FCS) and joined, decrypted,
A-XDR decoded and mapped to OBIS codes with scaled values. Variants (see bench/README.md, section
HDLC push):

  meterlink reader   HdlcFramer.feed(bytes) -> HdlcPushReader.handle(event) -> take_actions(): the
                     state machine the actor runs (segments, blocks, replay check, keys, decode_push)
  meterlink codec    HdlcFramer.feed(bytes) -> the join below -> decode_push(): the same codec work
                     without the state machine
  dlms-cosem         frames cut at their length field, UnnumberedInformationFrame.from_bytes (its
                     HDLC frame parser: addresses, control, HCS, FCS) -> the join below ->
                     GeneralGlobalCipher.from_bytes -> to_plain_apdu -> DataNotification.from_bytes
                     -> parse_as_dlms_data -> a mapping to (OBIS, value, scaler, unit) like meterlink's

The join (segments by the S bit, the LLC header off, blocks by meterlink's parse_block) is shared:
dlms-cosem 21.3.2 has no general-block-transfer. dlms-cosem decrypts only telegrams with a tag, so
the encrypted sets carry one (SC 0x30). Before timing, the script checks (untimed) that both give
the same values for every telegram. Timings are reported, never asserted. dlms-cosem (BSL-licensed)
is a benchmark peer only; meterlink and its tests never import it.

    .venv/bin/python bench/hdlc_push.py [--telegrams 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dlms_cosem.hdlc.frames import UnnumberedInformationFrame
from dlms_cosem.protocol.xdlms import DataNotification, GeneralGlobalCipher
from dlms_cosem.time import datetime_from_bytes
from dlms_cosem.utils import parse_as_dlms_data

from meterlink.machines.base import Publish
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.protocols.dlms.gbt import GENERAL_BLOCK_TRANSFER, parse_block
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import GENERAL_GLO_CIPHERING, CipherKeys
from meterlink.protocols.hdlc import LLC_RESPONSE, Frame, HdlcFramer
from meterlink.simulators.hdlc_push import HdlcPushMeterModel, Layout
from meterlink.simulators.kaifa import DEMO_KEY

from report import Report, Table, add_json_option, describe, emit
from mbus_decode import AUTH_KEY, check, obis_text, repeat

KEYS = [CipherKeys(DEMO_KEY, AUTH_KEY)]
START = datetime(2026, 11, 23, 0, 0)
RECEIVED_AT = 1795435200.0
CLOCK = "0-0:1.0.0.255"


# --- telegrams ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelegramSet:
    name: str
    streams: list[bytes] = field(repr=False)
    frames: int
    """Frames per telegram."""


def simulated(name: str, count: int, **model: object) -> TelegramSet:
    """`count` telegrams of 14 objects (OBIS code, value, {scaler, unit}: seed 001's variant 7) across a day."""
    meters = [HdlcPushMeterModel(layout=Layout.PAIRS, seed=seed, **model) for seed in range(1, 9)]  # type: ignore[arg-type]
    counter = 0x10000
    streams = []
    for n in range(count):
        meter = meters[n % len(meters)]
        meter.frame_counter, counter = counter, counter + 1
        frames = meter.frames(START + timedelta(seconds=37 * n))
        streams.append(b"".join(frames))
    return TelegramSet(name, streams, len(frames))


# --- what both sides share: frames' information fields in, APDUs out ------------------------------


class Joiner:
    """Segments joined by the S bit, the LLC header taken off, general-block-transfer blocks joined."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.blocks: list[bytes] = []

    def apdu(self, information: bytes, segmented: bool) -> bytes | None:
        self.parts.append(information)
        if segmented:
            return None
        joined = b"".join(self.parts)
        self.parts.clear()
        apdu = joined[len(LLC_RESPONSE) :] if joined.startswith(LLC_RESPONSE) else joined
        if apdu[0] != GENERAL_BLOCK_TRANSFER:
            return apdu
        block = parse_block(apdu)
        self.blocks.append(block.data)
        if not block.last:
            return None
        apdu = b"".join(self.blocks)
        self.blocks.clear()
        return apdu


# --- the decoders ------------------------------------------------------------------------------


def cosem_frames(data: bytes) -> list[UnnumberedInformationFrame]:
    """dlms-cosem's HDLC frame parser on each frame, cut at its length field (it has no stream framer
    for UI frames; the inputs here are clean)."""
    frames, at = [], 0
    while at < len(data):
        end = at + (((data[at + 1] & 0x07) << 8) | data[at + 2]) + 2
        frames.append(UnnumberedInformationFrame.from_bytes(data[at:end]))
        at = end
    return frames


def cosem_reading(plain: bytes) -> list[tuple]:
    """dlms-cosem: data-notification + A-XDR, then a mapping of OBIS code, value[, {scaler, unit}]
    to (OBIS, raw, scaler, unit), the clock as ISO 8601 and text as text, like meterlink's."""
    items = parse_as_dlms_data(DataNotification.from_bytes(plain).body)
    values = []
    index = 0
    while index < len(items):
        obis, value = obis_text(items[index]), items[index + 1]
        index += 2
        scaler = unit = None
        if index < len(items) and isinstance(items[index], list):
            scaler, unit = items[index]
            index += 1
        if isinstance(value, (bytes, bytearray)):
            value = datetime_from_bytes(value)[0].replace(tzinfo=None).isoformat() if obis == CLOCK else value.decode("ascii")
        values.append((obis, value, scaler, unit))
    return values


def cosem_decode(apdu: bytes) -> list[tuple]:
    if apdu[0] == GENERAL_GLO_CIPHERING:
        apdu = GeneralGlobalCipher.from_bytes(apdu).to_plain_apdu(DEMO_KEY, AUTH_KEY)
    return cosem_reading(apdu)


def comparable(reading) -> list[tuple]:
    """meterlink's reading as cosem_reading has it."""
    return [(v.obis, v.raw if v.raw is not None else v.value, v.scaler, v.unit_code) for v in reading.values]


# --- the timed variants: each decodes the whole set once and returns how many it decoded --------


def meterlink_reader(streams: list[bytes]) -> int:
    framer, machine = HdlcFramer(), HdlcPushReader(keys=lambda: KEYS)
    decoded = 0
    for data in streams:
        for event in framer.feed(data):
            machine.handle(event, RECEIVED_AT)
        decoded += sum(isinstance(action, Publish) for action in machine.take_actions())
    return decoded


def meterlink_codec(streams: list[bytes]) -> int:
    framer, joiner = HdlcFramer(), Joiner()
    last = None
    decoded = 0
    for data in streams:
        for event in framer.feed(data):
            if isinstance(event, Frame) and (apdu := joiner.apdu(event.information, event.segmented)) is not None:
                result = decode_push(apdu, KEYS, last, "hdlc-push", RECEIVED_AT)
                if result.outcome is Outcome.DECODED:
                    last = result.frame_counter
                    decoded += 1
    return decoded


def dlms_cosem(streams: list[bytes]) -> int:
    joiner = Joiner()
    decoded = 0
    for data in streams:
        for frame in cosem_frames(data):
            if (apdu := joiner.apdu(bytes(frame.payload), frame.segmented)) is not None:
                cosem_decode(apdu)
                decoded += 1
    return decoded


# --- untimed checks ----------------------------------------------------------------------------


def verify(sets: list[TelegramSet]) -> list[str]:
    for telegrams in sets:
        ours, theirs = [], []
        framer, joiner, machine = HdlcFramer(), Joiner(), HdlcPushReader(keys=lambda: KEYS)
        for data in telegrams.streams:
            for event in framer.feed(data):
                machine.handle(event, RECEIVED_AT)
            ours += [comparable(a.reading) for a in machine.take_actions() if isinstance(a, Publish)]
            theirs += [cosem_decode(apdu) for frame in cosem_frames(data)
                       if (apdu := joiner.apdu(bytes(frame.payload), frame.segmented)) is not None]
        check(len(ours) == len(theirs) == len(telegrams.streams), f"{telegrams.name}: a telegram was lost")
        check(ours == theirs, f"{telegrams.name}: the decoders disagree")
        check(meterlink_codec(telegrams.streams) == len(telegrams.streams), f"{telegrams.name}: the codec lost one")
    return [f"{t.name}: {len(t.streams)} telegrams, {t.frames} frames and {len(t.streams[0])} bytes each; both decoders give "
            f"the same OBIS codes, raw values, scalers and units, meter number and clock" for t in sets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--telegrams", type=int, default=300, help="telegrams per set (default 300)")
    parser.add_argument("--rounds", type=int, default=7, help="measurements per variant (default 7)")
    add_json_option(parser)
    options = parser.parse_args()
    info = describe(Path(decode_push.__code__.co_filename).resolve().parents[3], ["meterlink"],
                    ("meterlink", "dlms-cosem", "cryptography", "python-statemachine"))
    n = options.telegrams
    sets = [
        simulated("plain, 1 frame", n),
        simulated("tagged SC 0x30, segmented", n, key=DEMO_KEY, auth_key=AUTH_KEY, segmented=True),
        simulated("tagged SC 0x30, general-block-transfer", n, key=DEMO_KEY, auth_key=AUTH_KEY, blocks=True),
        simulated("plain, general-block-transfer in segments", n, segmented=True, blocks=True),
    ]
    notes = verify(sets)
    variants: list[tuple[str, str, Callable[[], float]]] = []
    for telegrams in sets:
        streams = telegrams.streams
        variants += [
            (telegrams.name, "meterlink reader (framer + HdlcPushReader)", repeat(lambda s=streams: meterlink_reader(s), n)),
            (telegrams.name, "meterlink codec (framer + join + decode_push)", repeat(lambda s=streams: meterlink_codec(s), n)),
            (telegrams.name, "dlms-cosem (frame parser + join + APDU decoding + mapping)", repeat(lambda s=streams: dlms_cosem(s), n)),
        ]
    rates: list[list[float]] = [[] for _ in variants]
    order = list(range(len(variants)))
    for round_number in range(options.rounds):
        for index in order if round_number % 2 == 0 else order[::-1]:
            rates[index].append(variants[index][2]())

    notes = [f"checked: {note}" for note in notes]
    notes.append(f"{options.rounds} rounds of {n} telegrams per set and variant; best and median of the rounds")
    throughput = Table("Telegrams per second:", ["set", "variant", "best /s", "median /s"],
                       [[group, name, f"{max(values):,.0f}", f"{statistics.median(values):,.0f}"]
                        for (group, name, _), values in zip(variants, rates)], numeric=2)
    rows = []
    for first in range(0, len(variants), 3):
        peer = rates[first + 2]
        for mine in (first, first + 1):
            ratios = [a / b for a, b in zip(rates[mine], peer)]
            rows.append([variants[mine][0], variants[mine][1], variants[first + 2][1], f"{statistics.median(ratios):.2f}",
                         f"{min(ratios):.2f}", f"{max(ratios):.2f}"])
    against = Table("meterlink / dlms-cosem, per round (same round, neighbouring runs):",
                    ["set", "meterlink variant", "against", "median ratio", "min", "max"], rows, numeric=3)
    emit(Report("hdlc_push", f"HDLC push benchmark, {datetime.now():%Y-%m-%d %H:%M}", info, notes, [throughput, against]),
         options.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
