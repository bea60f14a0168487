"""Hypothesis fuzz of every BSM decoder, seeded with the real captures (tests/data): only
ProtocolError may escape."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.bsm import Snapshot, decode_public_key, decode_snapshot
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.ocmf import parse_ocmf
from meterlink.protocols.sunspec import ModbusRtuClient, ModelInstance, model_header

from bsm_data import PUBLIC_KEY, SCS_INSTANCE, SIGNED, scs_frames, scs_registers
from mutations import edits, mutate

FRAMES = [frame for direction, frame in scs_frames() if direction == "<--"]
OCMF = list(SIGNED["ocmf"].values())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_modbus_frames(data: st.DataObject) -> None:
    client = ModbusRtuClient(42)
    for _ in range(data.draw(st.integers(1, 3))):
        client.feed(mutate(data.draw(st.sampled_from(FRAMES)), data.draw(edits)))  # never raises: bad bytes are BadFrame


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_snapshot_registers(data: st.DataObject) -> None:
    registers = scs_registers()
    for _ in range(data.draw(st.integers(0, 6))):
        registers[data.draw(st.integers(0, len(registers) - 1))] = data.draw(st.integers(0, 0xFFFF))
    length = data.draw(st.sampled_from([252, 252, 260, 200, 1]))
    try:
        snapshot = decode_snapshot(ModelInstance(SCS_INSTANCE.address, 64901, length), registers[:length + 2], PUBLIC_KEY)
        snapshot.verify()
        json.dumps(snapshot.to_json())
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=60))
def test_public_key_area(registers: list[int]) -> None:
    try:
        decode_public_key(registers)
    except ProtocolError:
        pass
    try:
        model_header(40003, registers[:2])
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_ocmf_strings(data: st.DataObject) -> None:
    text = mutate(data.draw(st.sampled_from(OCMF)).encode(), data.draw(edits)).decode("utf-8", "surrogateescape")
    try:
        parse_ocmf(text).verify(PUBLIC_KEY)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["Typ", "RCR", "TotWhImp", "W", "Wh_SF", "MA1", "Sig", "PK", "Meta1", "x"]),
                       st.one_of(st.integers(-2**40, 2**40), st.text(max_size=20), st.none(), st.booleans(), st.floats())))
def test_saved_snapshots(record: dict) -> None:
    base = dict(SIGNED["snapshots"]["scs"]["raw"])
    try:
        Snapshot.from_json(base | record).verify(PUBLIC_KEY)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["scs", "stons", "stoffs"]), st.data())
def test_tampering_with_any_signed_field_fails(name: str, data: st.DataObject) -> None:
    record = dict(SIGNED["snapshots"][name]["raw"])
    key = data.draw(st.sampled_from([k for k in record if k not in ("Sig", "St")]))
    value = record[key]
    if isinstance(value, int):
        changed = data.draw(st.integers(-2**31 if key in ("W", "TZO", "Wh_SF", "W_SF") else 0, 2**31 - 1).filter(lambda v: v != value))
    else:
        changed = data.draw(st.text(max_size=60).filter(lambda v: v != value))
    record[key] = changed
    try:
        assert not Snapshot.from_json(record).verify(PUBLIC_KEY)
    except ProtocolError:
        pass  # the changed value no longer fits its field: refused, never verified
