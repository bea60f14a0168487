"""The Sagemcom T210-D's first long frame, whose L field overflowed (issue 13 item 2).

Two real captures of different meters (tests/data/README.md): `68 01 01 68` starts a frame of 257
bytes from C on, whose checksum and stop byte hold at L + 256. The framer takes such a frame only
where they hold there, the link counts it as `length_overflow`, and the telegram is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing

from meterlink import cli
from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.mbus import MBusLink, run_mbus
from meterlink.machines.base import Dropped, Publish, Send
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.security import CipherKeys, parse_ciphered
from meterlink.protocols.framing import BadFrame
from meterlink.protocols.mbus import LongFrame, MBusFramer, encode_long, segment_payload
from meterlink.transports import memory_link_pair

DATA = Path(__file__).parent / "data"
FKW9 = json.loads((DATA / "sagemcom_mbus_evn_fkw9_overflow.json").read_text())
GH155 = json.loads((DATA / "sagemcom_mbus_evn_gh155_overflow_nokey.json").read_text())
TINETZ = json.loads((DATA / "kaifa_mbus_tinetz_doc.json").read_text())
FKW9_KEYS = [CipherKeys(bytes.fromhex(FKW9["key_if_any"]))]
ACK = Send(b"\xe5")


def capture(source: dict) -> bytes:
    return bytes.fromhex(source["hex_or_text"])


def frames(data: bytes) -> list:
    framer = MBusFramer()
    events = framer.feed(data)
    assert framer.pending == 0
    return events


def with_byte(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes((value,)) + data[at + 1 :]


def run(data: bytes, keys: list[CipherKeys]) -> tuple[MBusAdapter, list]:
    adapter = MBusAdapter(keys=lambda: keys)
    for event in MBusFramer().feed(data):
        adapter.handle(event, 1700000000.0)
    return adapter, adapter.take_actions()


# -- the framer ----------------------------------------------------------------------------------


def test_both_captures_frame_as_their_sources_state():
    for source in (FKW9, GH155):
        data = capture(source)
        first, second = frames(data)
        stated_first, stated_second = source["frames"]
        assert data[:4] == bytes.fromhex("68010168")
        assert isinstance(first, LongFrame) and first.length_overflow
        assert 3 + len(first.data) == stated_first["length"] == 0x101
        assert (first.c, first.a, first.ci, first.data[:2]) == (0x53, 0xFF, 0x00, b"\x01\x67")
        assert data[stated_first["checksum_offset"]] == stated_first["checksum"] and data[stated_first["stop_offset"]] == 0x16
        assert isinstance(second, LongFrame) and not second.length_overflow
        assert (second.ci, 3 + len(second.data)) == (0x11, stated_second["length"])
        # Re-encoded, the frames are the bytes that came in.
        assert b"".join(encode_long(f.c, f.a, f.ci, f.data, f.length_overflow) for f in (first, second)) == data


def test_the_joined_apdu_adds_up():
    """252 + 8 APDU bytes: DB 08, the title, length 0x81F8 (248), SC 0x20, then the ciphertext."""
    for source in (FKW9, GH155):
        apdu = b"".join(segment_payload(frame) for frame in frames(capture(source)))
        assert len(apdu) == 252 + 8
        ciphered = parse_ciphered(apdu)
        assert ciphered.security_control == 0x20 and ciphered.system_title[:3] == b"SAG"


def test_an_overflow_frame_whose_checksum_fails_at_l_plus_256_is_no_frame():
    data = capture(FKW9)
    offset = FKW9["frames"][0]["checksum_offset"]
    events = frames(with_byte(data, offset, data[offset] ^ 0x01) + bytes(300))
    assert isinstance(events[0], BadFrame)
    assert events[0].reason.startswith("long frame (L=0x01, read as 257 bytes): checksum")
    assert not any(isinstance(event, LongFrame) and event.length_overflow for event in events)
    # The second frame is still found after the resync.
    assert any(isinstance(event, LongFrame) and event.ci == 0x11 for event in events)


def test_an_overflow_frame_without_its_stop_byte_at_l_plus_256_is_no_frame():
    data = capture(GH155)
    events = frames(with_byte(data, GH155["frames"][0]["stop_offset"], 0x17) + bytes(300))
    assert isinstance(events[0], BadFrame) and events[0].reason.endswith("no stop byte")
    assert not any(isinstance(event, LongFrame) and event.length_overflow for event in events)


def test_random_68_01_01_68_is_no_frame():
    events = frames(bytes.fromhex("68 01 01 68 53 FF 00") + bytes(range(256)))
    assert isinstance(events[0], BadFrame)
    assert not any(isinstance(event, LongFrame) for event in events)


def test_a_normal_frame_whose_checksum_fails_is_rejected_at_once():
    """L >= 3 is judged at L: nothing waits for 256 bytes more (the meter waits for its ack)."""
    frame = capture(TINETZ)[: 4 + 0xFA + 2]
    bad = with_byte(frame, len(frame) - 2, frame[-2] ^ 0xFF)
    framer = MBusFramer()
    events = framer.feed(bad)
    assert isinstance(events[0], BadFrame) and events[0].reason.startswith("long frame (L=250): checksum")
    assert not any(isinstance(event, LongFrame) for event in events)


# -- the link --------------------------------------------------------------------------------------


def test_the_overflow_telegram_is_read_with_its_key_and_counted():
    adapter, actions = run(capture(FKW9), FKW9_KEYS)
    assert actions[:1] == [ACK] and actions.count(ACK) == 2
    (reading,) = [action.reading for action in actions if isinstance(action, Publish)]
    assert adapter.counters == {"telegrams": 1, "length_overflow": 1}
    # The values as the capture's file states them (dlms-cosem's decoding, not meterlink's).
    expected = FKW9["expected_values_if_given"]
    assert reading.captured_at == "2023-04-14T17:56:05"
    assert reading.meter_id == expected["0-0:96.1.0"] == "178210431186"
    for obis in ("1-0:32.7.0.255", "1-0:1.8.0.255", "1-0:31.7.0.255"):
        value = reading.value_of(obis)
        stated = expected["values"][obis]
        assert value is not None and (value.raw, value.scaler, value.value, value.unit) == (
            stated["raw"], stated["scaler"], stated["value"], stated["unit"]), obis
    assert reading.value_of("1-0:32.7.0.255").value == 232.9


def test_each_overflow_frame_is_counted_once():
    adapter, _ = run(capture(FKW9) * 3, FKW9_KEYS)
    # The same telegram again is a replay: counted as such, its overflow frame counted each time.
    assert adapter.counters == {"telegrams": 1, "replayed": 2, "length_overflow": 3}


def test_an_overflow_telegram_without_a_key_is_no_key_and_acked():
    adapter, actions = run(capture(GH155), [])
    assert actions.count(ACK) == 2
    assert [action.cause for action in actions if isinstance(action, Dropped)] == ["no_key"]
    assert adapter.counters == {"no_key": 1, "length_overflow": 1}


async def test_the_actor_reads_the_overflow_telegram_and_its_status_counts_it(autojump_clock):
    status = LinkStatus("house", "mbus")
    published = []
    ours, theirs = memory_link_pair()

    async def opened() -> trio.abc.Stream:
        return ours

    async def meter() -> None:
        await theirs.send_all(capture(FKW9))
        await trio.testing.wait_all_tasks_blocked()
        assert await theirs.receive_some() == b"\xe5\xe5"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_mbus, MBusLink("memory"), lambda: FKW9_KEYS, LinkHooks(published.append), status, opened)
        await meter()
        nursery.cancel_scope.cancel()
    assert len(published) == 1
    assert +status.counters == {"telegrams": 1, "length_overflow": 1}


def test_decode_mbus_reads_the_overflow_capture(capsys, tmp_path):
    path = tmp_path / "sagemcom.hex"
    path.write_text(FKW9["hex_or_text"])
    assert cli.main(["decode", "mbus", "--key", FKW9["key_if_any"], str(path)]) == 0
    out, err = capsys.readouterr()
    (reading,) = [json.loads(line) for line in out.splitlines()]
    assert reading["captured_at"] == "2023-04-14T17:56:05" and err == ""
