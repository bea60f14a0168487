"""Every decoder's work is linear in its input (issue 22 item 2), counted not timed.

`mutations.Work` counts parser steps (each line of meterlink run, each call into a library). Two
checks per decoder, on the real captures of tests/data:

- linearity: the captures repeated 64 times cost at most 1.25 times as many steps per byte as once
  (anything quadratic in the frames or values of a stream, or in the input's length, fails this);
- a per-byte ceiling under fuzzing: mutated captures repeated up to 40 times and flooded stay within
  a stated number of steps per input byte.

The ceilings are three to ten times the worst seen in probes of 60 and 200 examples per decoder
(figures in tests/fuzz/README.md, "Work"): loose enough not to fail on a rare costly input, tight
enough that a cost growing with the input's length fails at 32 KiB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.machines.mbus import MBusAdapter
from meterlink.machines.p1 import P1Reader
from meterlink.machines.wmbus import WMBusReceiver
from meterlink.protocols.dlms.apdu import parse_apdu
from meterlink.protocols.dlms.axdr import encode_data, structure
from meterlink.protocols.dlms.describe import describe_capture
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.hdlc import HdlcFramer
from meterlink.protocols.mbus import MBusFramer
from meterlink.protocols.mbus_app import parse_records
from meterlink.protocols.mep import MepReceiver
from meterlink.protocols.ocmf import parse_ocmf
from meterlink.protocols.p1 import P1Framer
from meterlink.protocols.sunspec import ModbusRtuClient
from meterlink.protocols.wrapper import WrapperFrame, WrapperFramer
from bsm_data import SIGNED
from mep_data import guide_messages
from mutations import Work, budget, edits, mutate
from test_fuzz_push_mapping import ELEMENTS, HEADERS
from test_fuzz_repaired import (HDLC_CLIENT, HDLC_KEYS, HDLC_PUSH, MBUS_KEYS, MBUS_STREAMS, MODBUS_RESPONSES, SMARTY_APDU,
                                SMARTY_KEYS, WRAPPED)
from test_oms_codec import PLAINTEXTS as OMS_PLAINTEXTS
from test_p1_tolerant_fuzz import SEEDS as P1_SEED_FILES
from test_wmbus import STICK_STREAMS


def feeding(framer: Callable[[], object], machine: Callable[[], object] | None = None) -> Callable[[bytes], None]:
    """Feed `data` to a new framer in 64-byte reads, each event to a new link machine."""
    def run(data: bytes) -> None:
        f, m = framer(), machine() if machine else None
        for at in range(0, len(data), 64):
            for event in f.feed(data[at : at + 64]):
                if m is not None:
                    m.handle(event, 1.0)
        if m is not None:
            m.take_actions()
    return run


def parsing(decode: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            decode(data)
        except ProtocolError:
            pass
    return run


def wrapped_apdus(data: bytes) -> None:
    """The wrapper framer, and the DLMS APDU parser on each frame it finds."""
    for frame in WrapperFramer().feed(data):
        if isinstance(frame, WrapperFrame):
            parsing(parse_apdu)(frame.apdu)


def notification_with(elements: int) -> bytes:
    """A data-notification of a real header and `elements` real elements."""
    return HEADERS[1] + encode_data(structure(*(ELEMENTS * (elements // len(ELEMENTS) + 1))[:elements]))


@dataclass(frozen=True)
class Decoder:
    name: str
    seed: bytes
    run: Callable[[bytes], None]
    per_byte: int
    """The ceiling of steps per input byte under fuzzing."""
    repeat: Callable[[bytes, int], bytes] = lambda seed, times: seed * times


P1_TELEGRAMS = b"".join(path.read_bytes() for path in P1_SEED_FILES)
STICKS = b"".join(stream for _, stream in STICK_STREAMS.values())

DECODERS = [
    Decoder("p1", P1_TELEGRAMS, feeding(P1Framer, lambda: P1Reader(legacy=True)), 60),
    Decoder("p1-encrypted", SMARTY_APDU, feeding(P1Framer, lambda: P1Reader(keys=lambda: [SMARTY_KEYS])), 60),
    Decoder("mbus", b"".join(MBUS_STREAMS), feeding(MBusFramer, lambda: MBusAdapter(keys=lambda: MBUS_KEYS)), 100),
    Decoder("hdlc-push", b"".join(HDLC_PUSH), feeding(HdlcFramer, lambda: HdlcPushReader(keys=lambda: HDLC_KEYS)), 200),
    Decoder("hdlc-describe", b"".join(HDLC_CLIENT), parsing(describe_capture), 60),
    Decoder("wrapper-dlms-apdus", b"".join(WrapperFrame(1, 16, apdu).to_bytes() for apdu in WRAPPED), wrapped_apdus, 50),
    Decoder("axdr-notification", notification_with(len(ELEMENTS)),
            parsing(lambda data: to_reading(parse_notification(data), "mbus", 1.0)), 60,
            lambda seed, times: notification_with(len(ELEMENTS) * times)),
    Decoder("modbus-rtu", b"".join(MODBUS_RESPONSES), feeding(lambda: ModbusRtuClient(42)), 150),
    Decoder("oms-records", OMS_PLAINTEXTS[0], parsing(parse_records), 150,
            lambda seed, times: seed[:2] + seed[2:].rstrip(b"\x2f") * times),
    Decoder("wmbus-receivers", STICKS, lambda data: [feeding(make, WMBusReceiver)(data) for make, _ in STICK_STREAMS.values()],
            500),
    Decoder("mep", b"".join(guide_messages()), feeding(MepReceiver), 20),
    Decoder("ocmf", SIGNED["ocmf"]["oscs"].encode(), parsing(lambda data: parse_ocmf(data.decode("utf-8", "replace"))), 20,
            lambda seed, times: seed.replace(b'"RD":[', b'"RD":[' + b'{"TM":"2020-01-01T00:00:00,000+0000 S","TX":"T","RV":1,"RI":"1-0:1.8.0","RU":"kWh","ST":"G"},' * times)),
]


MAX_INPUT = 1 << 15
"""Inputs are cut to 32 KiB: long enough that a quadratic cost would show, short enough for CI."""
BASE = 40000
"""Steps any run may take whatever its input: creating the link machines (python-statemachine)."""


def steps(decoder: Decoder, data: bytes) -> int:
    with Work() as work:
        decoder.run(data)
    return work.steps


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.name)
def test_repeated_captures_cost_the_same_per_byte(decoder: Decoder) -> None:
    once, many = decoder.repeat(decoder.seed, 1), decoder.repeat(decoder.seed, 64)
    per_byte_once = steps(decoder, once) / len(once)
    per_byte_many = steps(decoder, many) / len(many)
    assert per_byte_many <= 1.25 * per_byte_once + 0.5, (per_byte_once, per_byte_many)


@budget(25)
@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.name)
@given(times=st.integers(1, 40), changes=edits)
def test_mutated_floods_stay_within_a_ceiling_per_byte(decoder: Decoder, times: int, changes: list) -> None:
    data = mutate(decoder.repeat(decoder.seed, times), changes)[:MAX_INPUT]
    with Work() as work:
        decoder.run(data)
    work.at_most(decoder.per_byte, len(data), base=BASE)
