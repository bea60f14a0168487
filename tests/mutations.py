"""What the fuzz tests (issue 22 item 2) do to real captures, in one place.

Three kinds of help:

- mutations of bytes: `edits` (set, insert, delete, floods, bit flips, truncation; pieces include
  frame starts and huge A-XDR/BER lengths), `mutate` to apply them, `length_values` for a length
  field's edge and huge values, `in_chunks` to feed a framer in random pieces;
- repairs, so that a mutation reaches the parser behind a check: `with_crc` (P1 CRC-16/ARC),
  `modbus_crc`, `hdlc_frame` (HCS and FCS), `with_fcs` (the FCS over a changed header), the M-Bus
  checksum and wM-Bus block CRCs through the codecs' own encoders (`encode_long`, `with_crcs_a`/`_b`,
  whose checks tests/test_mbus_codec.py and tests/test_wmbus.py prove against the captures), and
  the ciphers (`security.encrypt`, `mbus_app.encrypt_payload`, `mep.digest_update`);
- `Work`: parser steps counted, not timed (each line of meterlink run, each call into a library),
  so a test can assert that work grows linearly with the input.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from meterlink.protocols import errors
from meterlink.protocols.crc import crc16_arc, crc16_x25
from meterlink.protocols.hdlc import Frame

PACKAGE = str(Path(errors.__file__).parent.parent)
"""meterlink's own code: its lines are the steps `Work` counts."""
LONG_PROFILE = "fuzz"
"""`HYPOTHESIS_PROFILE=fuzz pytest tests/test_fuzz_*.py` runs every fuzz test 5000 times (by hand)."""
settings.register_profile(LONG_PROFILE, max_examples=5000, deadline=None)
if os.environ.get("HYPOTHESIS_PROFILE") == LONG_PROFILE:
    settings.load_profile(LONG_PROFILE)


def budget(examples: int) -> settings:
    """A fuzz test's settings: `examples` in the default run (CI), the long profile's when it is loaded."""
    long_run = os.environ.get("HYPOTHESIS_PROFILE") == LONG_PROFILE
    return settings(max_examples=settings.default.max_examples if long_run else examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


FUZZ = budget(200)
"""The default-run budget of the capture fuzz tests."""

NASTY = [b"\xb2", b"\xb3", b"\xb9", b"0", b"9", b"(", b")", b"*", b".", b"-", b":", b"\r\n", b"!", b"/",
         b"1" * 25, b"9" * 4400, b"\x00", b"\xff", b"\x7e", b"\x7e\xa0", b"\xe5", b"\x68", b"\x10", b"\x16",
         b"\x17\x7f\xc0\x00\x00", b"\x18\xff\xf0" + bytes(6),
         b"\x01\x82\xff\xff", b"\x02\x84\xff\xff\xff\xff", b"\x09\x84\x7f\xff\xff\xff", b"\x81\xff", b"\x82\x10\x00",
         b"\x01\x00", b"\x02\x00", b"\x0a\x00"]
"""What tends to break decoders: Latin-1 digits, long digit runs, delimiters, frame starts, A-XDR
float32 NaN and float64 -infinity (as long as a double-long or a long64 value they replace), and
arrays, structures and octet strings with huge or empty lengths."""

EDIT_KINDS = ["set", "insert", "delete", "flood", "flip", "truncate"]

edits = st.lists(
    st.tuples(
        st.sampled_from(EDIT_KINDS),
        st.integers(0, 1 << 16),
        st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=6)),
        st.integers(1, 300),
    ),
    max_size=6,
)
"""Changes for `mutate`: (kind, where, piece, times). `flip` XORs the byte at `where` with bit
`times % 8`; `truncate` cuts everything from `where` on (within the range mutated)."""
cuts = st.lists(st.integers(0, 1 << 16), max_size=8)


def mutate(seed: bytes, changes: list, start: int = 0, end: int | None = None) -> bytes:
    """`seed` with `changes` made between `start` and `end` (default: anywhere)."""
    data = bytearray(seed)
    for kind, where, piece, times in changes:
        stop = end if end is not None else len(data)  # nothing at or after `end` is changed, only inserted before
        at = start + where % (max(0, stop - start) + 1)
        if kind == "set":
            data[at : min(at + len(piece), stop)] = piece[: max(0, stop - at)]
        elif kind == "insert":
            data[at:at] = piece
        elif kind == "delete":
            del data[at : min(at + len(piece), stop)]
        elif kind == "flood":
            data[at:at] = piece * times
        elif kind == "flip":
            if at < stop:
                data[at] ^= 1 << (times % 8)
        else:
            del data[at:stop]
        end = None if end is None else end + len(data) - len(seed)
        seed = bytes(data)
    return bytes(data)


def length_values(size: int, true_value: int) -> st.SearchStrategy[int]:
    """Values for a length field of `size` bytes whose right value is `true_value`: off by one,
    zero, the largest, and anything."""
    top = (1 << (8 * size)) - 1
    edges = [0, 1, true_value - 1, true_value + 1, top - 1, top]
    return st.sampled_from([v for v in edges if 0 <= v <= top]) | st.integers(0, top)


def in_chunks(framer: Any, data: bytes, chunk_cuts: list[int]) -> list:
    """Every event of `framer` fed `data` cut at `chunk_cuts`."""
    points = sorted({cut % (len(data) + 1) for cut in chunk_cuts} | {0, len(data)})
    return [event for a, b in zip(points, points[1:]) for event in framer.feed(data[a:b])]


def strict_json(document: object) -> None:
    json.dumps(document, allow_nan=False)


# -- repairs -----------------------------------------------------------------------------------


def with_crc(body: bytes) -> bytes:
    """A P1 telegram body up to and including '!' with its CRC line, as a meter would send it."""
    return body + f"{crc16_arc(body):04X}\r\n".encode("ascii")


def modbus_crc(frame: bytes) -> bytes:
    """A Modbus RTU frame (unit, PDU) with its CRC-16/MODBUS appended, low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return frame + crc.to_bytes(2, "little")


def hdlc_frame(frame: Frame, information: bytes) -> bytes:
    """`frame` with another information field: length, HCS and FCS made right."""
    return replace(frame, information=information[: 0x7FF - 16]).to_bytes()


def with_fcs(raw: bytes, header_end: int) -> bytes:
    """An HDLC frame (flags included) whose header was changed: its HCS (when it has an information
    field) and FCS computed again, whatever its length field says."""
    body = bytearray(raw[1:-1])
    if len(body) > header_end + 4:
        body[header_end : header_end + 2] = crc16_x25(bytes(body[:header_end])).to_bytes(2, "little")
    body[-2:] = crc16_x25(bytes(body[:-2])).to_bytes(2, "little")
    return b"\x7e" + bytes(body) + b"\x7e"


# -- work --------------------------------------------------------------------------------------


class Work:
    """Parser steps counted while inside the `with`: each line of meterlink's code run, and each
    call into anything else (the libraries a codec uses). A decoder's work must grow linearly with
    its input; counting steps instead of timing makes that a deterministic assertion on a shared
    machine."""

    def __init__(self) -> None:
        self.steps = 0

    def _call(self, frame: FrameType, event: str, arg: object) -> Any:
        self.steps += 1
        return self._line if frame.f_code.co_filename.startswith(PACKAGE) else None

    def _line(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            self.steps += 1
        return self._line

    def __enter__(self) -> Work:
        self._previous = sys.gettrace()
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def at_most(self, per_byte: int, size: int, base: int = 2000) -> None:
        """Fail unless the steps stay within `base` + `per_byte` per input byte."""
        assert self.steps <= base + per_byte * size, (
            f"{self.steps} steps for {size} bytes: more than {base} + {per_byte} per byte")
