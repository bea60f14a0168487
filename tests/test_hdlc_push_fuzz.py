"""Fuzzing the HDLC push link (issue 14) with the real captures in tests/data and the simulator's
framings as seeds: mutated notifications (bytes changed, inserted, deleted, floods), fed in random
chunks to the framer and HdlcPushReader with deadlines passing as the actor would send them. The
machine never raises, every reading is strict JSON, and once the line is quiet again the next
intact notification is read; the block decoder raises nothing but a ProtocolError."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from meterlink.machines.base import Publish, Resync
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.protocols.dlms.gbt import parse_block
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.hdlc import Frame, HdlcFramer
from meterlink.simulators.hdlc_push import HdlcPushMeterModel, Layout
from mutations import FUZZ, cuts, edits, in_chunks, mutate, strict_json
from test_hdlc_push_machine import BLOCKS, GBT_REAL, KEYRING, REAL, SEGMENTED

SEEDS = [n.data for n in (*REAL, GBT_REAL, *SEGMENTED, *BLOCKS)] + [
    b"".join(HdlcPushMeterModel(layout=layout, segmented=True, blocks=True).frames(datetime(2026, 11, 23, 12)))
    for layout in Layout
]
INTACT = [n.data for n in (*REAL, GBT_REAL)]
"""Notifications that decode with KEYRING (or need none), at frame counters below the simulator's."""


def feed(machine: HdlcPushReader, framer: HdlcFramer, data: bytes, chunk_cuts: list[int]) -> list:
    actions = []
    for event in in_chunks(framer, data, chunk_cuts):
        machine.handle(event, 1.0)
        actions += machine.take_actions()
    return actions


def quiet_line(machine: HdlcPushReader, framer: HdlcFramer) -> None:
    """The line stays quiet: each pending deadline passes, as the actor would send it (silence aside)."""
    while due := [timeout.event for timeout, _ in machine.active_timeouts() if timeout.event != "silence"]:
        machine.send(due[0])
        if Resync() in machine.take_actions():
            framer.reset()


@FUZZ
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=3), edits, cuts, st.sampled_from(INTACT), cuts)
def test_the_link_never_raises_and_reads_the_next_intact_notification(seeds, changes, chunk_cuts, intact, intact_cuts):
    machine, framer = HdlcPushReader(keys=lambda: KEYRING), HdlcFramer()
    for action in feed(machine, framer, mutate(b"".join(seeds), changes), chunk_cuts):
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())
    quiet_line(machine, framer)
    machine.last_frame_counter = None  # what came before may have been replayed ahead of the intact one
    assert framer.pending == 0 and not machine.holds_partial
    published = [a for a in feed(machine, framer, intact, intact_cuts) if isinstance(a, Publish)]
    assert len(published) == 1
    strict_json(published[0].reading.to_json())


BLOCK_APDUS = [frame.information.removeprefix(b"\xe6\xe7\x00") for n in (*BLOCKS, GBT_REAL)
               for frame in HdlcFramer().feed(n.data) if isinstance(frame, Frame)]


@FUZZ
@given(st.sampled_from(BLOCK_APDUS), edits)
def test_blocks_decode_or_raise_a_protocol_error(block, changes):
    try:
        parse_block(mutate(block, changes))
    except ProtocolError:
        pass
