"""Fuzzing the tolerant P1 parser (issue 15) with the real telegrams in tests/data as seeds: lines
mutated, junk lines inserted, lines broken, the CRC kept right. Nothing escapes but a
`ProtocolError`, and nothing at all while the identification line holds: such a telegram always
yields a `P1Telegram`; every skipped line is reported; the good lines around a bad one are still read.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from meterlink.machines.base import Noted, Publish
from meterlink.machines.p1 import P1Reader
from meterlink.protocols.p1 import P1Framer, P1Telegram, TelegramFramed, parse_telegram
from mutations import FUZZ, edits, in_chunks, mutate, strict_json, with_crc

DATA = Path(__file__).parent / "data"

SEEDS = sorted(DATA.glob("*p1*.txt"))
BODIES = [path.read_bytes()[: path.read_bytes().index(b"!") + 1] for path in SEEDS]
"""Each seed from `/` up to and including `!` (what the CRC covers)."""
assert len(BODIES) == 8


def lines_of(body: bytes) -> list[bytes]:
    """The identification line, then every line up to `!` (which is kept as the last item)."""
    return body.split(b"\r\n")


def parsed(body: bytes) -> P1Telegram:
    """`body` (up to `!`) parsed: its identification line holds, so nothing may raise, not even a
    ProtocolError."""
    telegram = parse_telegram(body[:-1])
    assert isinstance(telegram, P1Telegram)
    strict_json(telegram.to_reading(None).to_json())
    return telegram


LINE_BYTES = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in b"\r\n!/"))
junk_lines = st.one_of(
    LINE_BYTES.map(lambda b: b"X" + b),  # no object code: skipped with obis None
    st.tuples(st.sampled_from([b"1-0:1.8.1", b"0-0:98.1.0", b"0-1:24.2.1", b"1-0:1.8.0*255"]), LINE_BYTES)
    .map(lambda t: t[0] + b"(" + t[1].replace(b")", b"")),  # an unclosed bracket: never an object
)


@FUZZ
@given(st.sampled_from(BODIES), edits)
def test_mutated_lines_only_ever_give_a_telegram(body, changes):
    """The identification line kept, anything done to the rest: always a P1Telegram, nothing raised."""
    start = body.index(b"\n") + 1
    parsed(mutate(body, changes, start=start, end=len(body) - 1))


@FUZZ
@given(st.sampled_from(BODIES), edits, st.lists(st.integers(0, 1 << 16), max_size=8))
def test_mutated_telegrams_through_framer_and_reader_never_raise(body, changes, chunk_cuts):
    """The same through the framer (CRC made right) and the reader: published or dropped, never raised."""
    telegram = with_crc(mutate(body, changes, start=body.index(b"\n") + 1, end=len(body) - 1))
    reader = P1Reader(legacy=True)
    for event in in_chunks(P1Framer(), telegram, chunk_cuts):
        reader.handle(event, 1.0)
        if isinstance(event, TelegramFramed) and event.telegram is not None:
            strict_json(event.telegram.to_reading(None).to_json())
    actions = reader.take_actions()
    assert reader.counters["bad_lines"] == len([a for a in actions if isinstance(a, Noted)])


@FUZZ
@given(st.sampled_from(BODIES), st.lists(st.tuples(st.integers(0, 1 << 16), junk_lines), min_size=1, max_size=5))
def test_each_junk_line_is_reported_and_every_good_line_still_read(body, inserted):
    lines = [(line, False) for line in lines_of(body)]
    original = parsed(body)
    for where, junk in inserted:
        at = 2 + where % (len(lines) - 2)  # after the identification and blank lines, before `!`
        while lines[at][0].startswith(b"("):
            at += 1  # not before a continuation line (DSMR 2.2 gas): its `(` would join the junk
        lines.insert(at, (junk, True))
    damaged = b"\r\n".join(line for line, _ in lines)
    telegram = parsed(damaged)
    junk_numbers = [n for n, (_, junk) in enumerate(lines, start=1) if junk]
    moved = [n for n, (_, junk) in enumerate(lines, start=1) if not junk]  # original line k is now moved[k - 1]
    expected = sorted(junk_numbers + [moved[s.line - 1] for s in original.skipped])  # E.ON's own skipped line
    assert [s.line for s in telegram.skipped] == expected
    assert all(s.reason and len(s.text) <= 60 for s in telegram.skipped)
    assert telegram.values == original.values

    # the reader publishes it and counts each line once, naming it
    reader = P1Reader(legacy=True)
    for event in P1Framer().feed(with_crc(damaged)):
        reader.handle(event, 1.0)
    actions = reader.take_actions()
    assert isinstance(actions[0], Publish) and actions[0].reading.values == original.values
    assert [a.detail.split(" ", 2)[1] for a in actions[1:]] == [str(n) for n in expected]
    assert reader.counters["bad_lines"] == len(expected)


@FUZZ
@given(st.sampled_from(BODIES), st.integers(0, 1 << 16))
def test_a_broken_line_is_the_only_one_lost(body, which):
    """One object's closing bracket taken away: that object alone is skipped and named, every other
    value is still read."""
    original = parsed(body)
    lines = lines_of(body)
    already = {s.line for s in original.skipped}
    candidates = [n for n, line in enumerate(lines) if line.endswith(b")") and n + 1 not in already]
    index = candidates[which % len(candidates)]
    lines[index] = lines[index][:-1]
    telegram = parsed(b"\r\n".join(lines))
    (skipped,) = [s for s in telegram.skipped if s.line not in already]
    first = index
    while lines[first].startswith(b"("):
        first -= 1  # a continuation line breaks the object it continues (DSMR 2.2 gas)
    code = lines[first].split(b"(", 1)[0].split(b"*")[0].decode()
    assert skipped.line == first + 1 and skipped.obis is not None and skipped.obis.startswith(code + ".")
    kept, lost = list(telegram.values), []
    for value in original.values:
        if value in kept:
            kept.remove(value)
        else:
            lost.append(value)
    assert len(lost) == 1 and lost[0].obis == skipped.obis
