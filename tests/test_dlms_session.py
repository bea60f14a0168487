"""Seed 002 ch. 4 byte for byte: the client with default settings sends exactly the printed request
frames when the printed response frames are replayed to it, and decodes what they carry; the
simulated meter answers the public session with exactly the printed frames."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from kamstrup_session import Exchange, lls_session, missing_rows, public_session, row_times
from meterlink.machines.base import Dropped, Publish, Send
from meterlink.machines.dlms import Association, DlmsClient
from meterlink.machines.dlms_meter import DlmsMeter
from meterlink.protocols.dlms.objects import KAMSTRUP_CLOCK, AttributeRef, range_access
from meterlink.protocols.dlms.xdlms import AttributeDescriptor
from meterlink.protocols.hdlc import HdlcFramer, parse_frame
from meterlink.simulators.kamstrup import KamstrupMeterModel

METER_NUMBER = AttributeRef.parse("1:1.1.0.0.1.255:2")
LOAD_PROFILE = dataclasses.replace(
    AttributeRef.parse("7:1.1.99.1.0.255:2"),
    access=range_access(AttributeDescriptor(8, KAMSTRUP_CLOCK, 2), datetime(2013, 10, 25), datetime(2013, 10, 26)),
)


def replay(client: DlmsClient, session: list[Exchange], chunk: int = 4096) -> list:
    """Feed each printed response once the client has sent the printed request; the actions besides Send."""
    framer = HdlcFramer()
    client.send("connect")
    others = []
    for exchange in session:
        actions = client.take_actions()
        sent = [a.data for a in actions if isinstance(a, Send)]
        assert sent == [exchange.request], f"{exchange.step}: the client sent {[s.hex() for s in sent]}"
        others += [a for a in actions if not isinstance(a, Send)]
        for start in range(0, len(exchange.response), chunk):
            for event in framer.feed(exchange.response[start : start + chunk]):
                client.handle(event, 1382659200.0)
    actions = client.take_actions()
    assert not [a for a in actions if isinstance(a, Send)], "nothing is sent after the final UA"
    return others + actions


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_public_session_byte_for_byte(chunk):
    client = DlmsClient(reads=(METER_NUMBER,))
    actions = replay(client, public_session(), chunk)
    (publish,) = actions
    reading = publish.reading.to_json()
    assert reading["values"] == [{"obis": "1-1:0.0.1.255", "value": 12345679, "raw": 12345679}]
    assert reading["meter_id"] == "12345679" and reading["link"] == "dlms" and reading["received_at"] == 1382659200.0
    assert client.is_terminated and client.parameters.max_info_tx == 128 and client.parameters.max_info_rx == 512


def test_lls_profile_session_byte_for_byte_and_its_rows():
    client = DlmsClient(Association(password=b"12345"), reads=(LOAD_PROFILE,))
    actions = replay(client, lls_session())
    (publish,) = actions
    (value,) = publish.reading.values
    assert value.obis == "1-1:99.1.0.255"
    rows = value.value
    assert [row.time for row in rows] == [moment.isoformat() for moment in row_times()]
    assert len(rows) == 59 and not {m.isoformat() for m in missing_rows()} & {row.time for row in rows}
    first, fifth, last = rows[0].value, rows[4].value, rows[-1].value
    assert first == ("2013-10-25T00:00:00", 0, 0x500, 1, 3, 0, 0, 1)
    assert fifth[0] == "2013-10-25T01:00:00"  # the vector's correction of the printed 01:15
    assert last == ("2013-10-25T15:15:00", 0, 0, 1, 214008, 0, 3817, 1)  # 0x343F8, 0xEE9 as printed
    assert client.counters["requests"] == 1 and client.is_terminated


def test_lls_request_frames_are_the_printed_ones_whatever_the_password_length():
    """The AARQ's length fields follow the password; the seed's 5-byte one gives the printed frame."""
    association = Association(password=b"12345")
    aarq = parse_frame(lls_session()[1].request).information[3:]
    assert association.aarq().to_bytes() == aarq
    assert "12345" not in repr(association) and "12345" not in repr(association.aarq())


def test_the_simulated_meter_answers_the_public_session_with_the_printed_frames():
    meter = DlmsMeter(KamstrupMeterModel(wallclock=lambda: datetime(2013, 10, 9, 21, 19, 46)))
    framer = HdlcFramer()
    for exchange in public_session():
        for event in framer.feed(exchange.request):
            meter.handle(event)
        sent = [a.data for a in meter.take_actions() if isinstance(a, Send)]
        assert sent == [exchange.response], exchange.step
    assert meter.state_name == "ndm,quiet"


def pump(client: DlmsClient, meter: DlmsMeter) -> list:
    """Run a client against a meter, frame by frame, until the client is done; its actions besides Send."""
    to_meter, to_client = HdlcFramer(), HdlcFramer()
    others = []
    client.send("connect")
    while not client.is_terminated:
        actions = client.take_actions()
        others += [a for a in actions if not isinstance(a, Send)]
        sent = [a.data for a in actions if isinstance(a, Send)]
        assert sent, f"the client waits for nothing in {client.state_name}"
        for data in sent:
            for event in to_meter.feed(data):
                meter.handle(event)
        for action in meter.take_actions():
            if isinstance(action, Send):
                for event in to_client.feed(action.data):
                    client.handle(event, 5.0)
    return others + client.take_actions()


def test_a_wrong_password_is_refused_and_named():
    client = DlmsClient(Association(password=b"54321"), reads=(LOAD_PROFILE,))
    meter = DlmsMeter(KamstrupMeterModel())
    drops = [a for a in pump(client, meter) if isinstance(a, Dropped)]
    assert [d.cause for d in drops] == ["association_refused", "get_failed"]
    assert "authentication failure" in drops[0].detail and "54321" not in drops[0].detail
    assert client.is_terminated and meter.counters["refused_associations"] == 1


def test_an_unknown_object_is_named_and_the_next_read_goes_on():
    client = DlmsClient(Association(password=b"12345"), reads=(AttributeRef.parse("1:1.1.0.0.9.255:2"), METER_NUMBER))
    actions = pump(client, DlmsMeter(KamstrupMeterModel()))
    assert [a.detail for a in actions if isinstance(a, Dropped)] == ["GET 1:1-1:0.0.9.255:2: object-undefined"]
    readings = [a.reading.to_json() for a in actions if isinstance(a, Publish)]
    assert [r["values"] for r in readings] == [[{"obis": "1-1:0.0.1.255", "value": 12345679, "raw": 12345679}]]
    assert readings[0]["received_at"] == 5.0
