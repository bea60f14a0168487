"""Floods reach a link's machine batched (issue 12, item 10).

A machine event costs about 80 µs, so a framer that made one per byte of noise turned 100 kB of
0xE5 into 30 s of `decode mbus`, and 1 MB of `7E A0` (a frame start without a frame, over and
over) into 26 s of `decode hdlc`. What is noise now reaches the machine as one event per run: the
tests count machine events, at most one per frame plus one per run of noise (plus, for HDLC, the
one that ends each read). bench/floods.py has the times.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from meterlink.cli import main
from meterlink.machines.dlms import DlmsClient
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.describe import describe_capture
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.framing import BadFrame
from meterlink.protocols.hdlc import Frame, HdlcFramer, Partial, parse_frame
from meterlink.protocols.mbus import LongFrame, MBusFramer, SingleChar

DATA = Path(__file__).parent / "data"
TINETZ = json.loads((DATA / "kaifa_mbus_tinetz_doc.json").read_text())
TINETZ_FRAMES = bytes.fromhex(TINETZ["hex_or_text"])  # two long frames, one telegram
KAMSTRUP = json.loads((DATA / "kamstrup_hdlc.json").read_text())
SEED_FRAMES = [bytes.fromhex(exchange[side]) for exchange in KAMSTRUP["public_association"]["exchanges"]
               for side in ("request", "response")]

ACKS = b"\xe5" * 100_000
FALSE_STARTS = b"\x7e\xa0" * 500_000


class Counted:
    """A machine, and the events it is sent from outside (by `handle`, for the framer's events);
    events it raises itself, such as a joined telegram, are its own work and not counted."""

    def __init__(self, machine) -> None:
        self.machine = machine
        self.events: Counter[str] = Counter()
        send = machine.send

        def counting(event: str, *args, **kwargs):
            if not kwargs.get("internal"):
                self.events[event] += 1
            return send(event, *args, **kwargs)

        machine.send = counting

    def feed(self, framer, data: bytes, chunk: int | None = None) -> list:
        """Feed `data` in reads of `chunk` bytes (all at once by default); the framer's events."""
        chunk = chunk or len(data) or 1
        events = []
        for start in range(0, len(data), chunk):
            for event in framer.feed(data[start : start + chunk]):
                events.append(event)
                self.machine.handle(event, None)
        self.machine.take_actions()
        return events

    @property
    def count(self) -> int:
        return sum(self.events.values())


# -- M-Bus ---------------------------------------------------------------------------------------


def test_100_kB_of_acknowledgements_are_one_event():
    adapter = Counted(MBusAdapter())
    assert adapter.feed(MBusFramer(), ACKS) == [SingleChar(100_000)]
    assert adapter.count == 1
    assert adapter.machine.counters["foreign_frames"] == 100_000  # counted as before, byte for byte


@pytest.mark.parametrize("chunk", [None, 4096, 1000])
def test_runs_of_acknowledgements_between_frames(chunk):
    adapter = Counted(MBusAdapter(keys=lambda: [CipherKeys(bytes.fromhex(TINETZ["key_if_any"]))]))
    data = ACKS[:3000] + TINETZ_FRAMES[:256] + ACKS[:7] + TINETZ_FRAMES[256:] + ACKS[:5000]
    events = adapter.feed(MBusFramer(), data, chunk)
    frames, runs = 2, 3
    reads = 1 if chunk is None else -(-len(data) // chunk)
    assert sum(isinstance(e, LongFrame) for e in events) == frames
    assert adapter.count <= frames + runs + (reads - 1)  # a read that ends inside a run cuts it in two
    assert adapter.machine.counters["foreign_frames"] == 8007 and adapter.machine.counters["telegrams"] == 1


@pytest.mark.parametrize("flood", [b"\x68" * 100_000, b"\x68\xff\x00\x11" * 25_000, b"\x10\x40\x00\x00\x00" * 20_000],
                         ids=["long-starts", "bad-long-headers", "bad-short-frames"])
def test_a_flood_of_false_frame_starts_is_one_drop(flood):
    adapter = Counted(MBusAdapter())
    events = adapter.feed(MBusFramer(), flood + TINETZ_FRAMES[:256])
    (bad, frame) = events
    assert isinstance(bad, BadFrame) and isinstance(frame, LongFrame)
    assert bad.count == len(flood) and bad.frames > 1 and bad.count == bad.frames + bad.noise
    counters = adapter.machine.counters
    assert counters["bad_frame"] == 1 and counters["noise_bytes"] == bad.noise


def test_decode_mbus_hands_the_machine_one_event_per_frame_and_run(tmp_path, capsys, monkeypatch):
    handled: list = []
    handle = MBusAdapter.handle

    def counting(self, event, received_at=None):
        handled.append(event)
        return handle(self, event, received_at)

    monkeypatch.setattr(MBusAdapter, "handle", counting)
    capture = tmp_path / "flood.bin"
    capture.write_bytes(ACKS + TINETZ_FRAMES + b"\x68" * 1000 + ACKS)
    assert main(["decode", "mbus", "--key", TINETZ["key_if_any"], str(capture)]) == 1  # the bad frames fail
    out, err = capsys.readouterr()
    assert json.loads(out)["meter_id"] == "1KFM0100000035"
    (line,) = err.splitlines()
    assert line.startswith("meterlink: telegram 2: bad_frame: 1000 frame starts in 1000 bytes did not check out; the first: ")
    assert [type(e).__name__ for e in handled] == ["SingleChar", "LongFrame", "LongFrame", "BadFrame", "SingleChar"]


# -- HDLC ----------------------------------------------------------------------------------------


def test_1_MB_of_false_starts_is_one_event_and_one_drop():
    client = Counted(DlmsClient())
    bad, end = client.feed(HdlcFramer(), FALSE_STARTS)
    assert isinstance(bad, BadFrame) and isinstance(end, Partial)  # the last 7E A0 may yet begin a frame
    assert bad.frames + bad.noise == bad.count and bad.count + end.held == len(FALSE_STARTS)
    assert client.count == 2
    assert client.machine.counters["bad_frame"] == 1 and client.machine.counters["noise_bytes"] == bad.noise


FLOODS = [FALSE_STARTS[:20_000], b"\x7e\x00" * 5000, bytes(range(256)) * 40, b"\x11" + FALSE_STARTS[:600] + b"\x22"]


@pytest.mark.parametrize("chunk", [None, 4096])
def test_floods_between_seed_frames(chunk):
    data = b"".join(flood + frame for flood, frame in zip(FLOODS, SEED_FRAMES))
    client = Counted(DlmsClient())
    events = client.feed(HdlcFramer(), data, chunk)
    assert [e for e in events if isinstance(e, Frame)] == [parse_frame(frame) for frame in SEED_FRAMES[: len(FLOODS)]]
    reads = 1 if chunk is None else -(-len(data) // chunk)
    # Each frame, each flood (cut in two where a read ends inside it), and one Partial/Quiet per read.
    assert client.count <= len(FLOODS) + len(FLOODS) + 2 * reads


def test_decode_hdlc_describes_a_flood_as_one_entry():
    (entry,) = describe_capture(FALSE_STARTS)
    assert entry["noise"] == len(FALSE_STARTS) and entry["offset"] == 0
    assert entry["error"].startswith("500000 frame starts lead to no frame, the first at byte 0: length field 126")
    (noise,) = describe_capture(b"\x7e\x00" * 500_000)
    assert noise["noise"] == 1_000_000 and "error" not in noise


def test_decode_hdlc_finds_every_frame_after_a_flood():
    """Also where a false start's length field points at the closing flag of the frame after it."""
    capture = b"".join(flood + frame for flood, frame in zip(FLOODS, SEED_FRAMES))
    entries = describe_capture(capture)
    frames = [entry["hex"] for entry in entries if "noise" not in entry and "error" not in entry]
    assert frames == [frame.hex().upper() for frame in SEED_FRAMES[: len(FLOODS)]]
    assert len(entries) <= len(frames) + 2 * len(FLOODS)


def test_a_lone_broken_frame_is_still_described_as_one():
    broken, frame = describe_capture(b"\x7e\xa0" + SEED_FRAMES[1])
    assert broken == {"frame": 1, "offset": 0, "hex": "7EA0", "error": "length field 126: the capture ends after 35 of its bytes"}
    assert frame["control"]["frame"] == "UA"


def test_decode_hdlc_of_a_flood_prints_one_line(tmp_path, capsys):
    capture = tmp_path / "flood.bin"
    capture.write_bytes(FALSE_STARTS + SEED_FRAMES[0])
    assert main(["decode", "hdlc", "--annotate", str(capture)]) == 1
    out, err = capsys.readouterr()
    flood, snrm = [json.loads(line) for line in out.splitlines()]
    assert flood["noise"] == len(FALSE_STARTS) and snrm["control"]["frame"] == "SNRM" and "error" not in snrm
    (line,) = err.splitlines()
    assert line.startswith("meterlink: frame 1 at byte 0: 500000 frame starts lead to no frame")
