"""The soak's lines: between each simulated meter and its link an in-memory stream pair, a fresh one
each time the service opens the link, with the fault schedule applied on the way.

A push meter's telegrams are entered in the line's ledger as they are sent, each with the fault
that touched it (None: clean) and its tag, the meter clock's second the telegram carries, by
which the published readings are matched. A polled meter's answers are counted the same way.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from meterlink.transports import TransportError, memory_link_pair

from .faults import Fault, Schedule, flip_bit, noise, truncate

LINK_DOWN = "link_down"
"""A telegram sent while no link was open: between an actor's end and its restart."""


@dataclass
class Sent:
    tag: str
    at: float
    """trio time it was sent."""
    cause: str | None
    """The fault that touched it, LINK_DOWN, or None when it went out clean."""
    published: int = 0
    published_at: float | None = None


SETTLE = 120.0
"""Simulated seconds after which a telegram not published will not be: it is settled."""
MAX_PROBLEMS = 20


@dataclass
class Ledger:
    """A push link's telegrams, matched with what was published as it goes, so that the harness's
    own memory stays flat however long the run (the soak measures the service's)."""

    pending: dict[str, Sent] = field(default_factory=dict)
    sent_by_cause: Counter[str] = field(default_factory=Counter)
    published_by_cause: Counter[str] = field(default_factory=Counter)
    published: int = 0
    max_latency: float = 0.0
    problems: list[str] = field(default_factory=list)

    def append(self, sent: Sent) -> None:
        self.pending[sent.tag] = sent

    def note_published(self, tag: str | None, at: float) -> None:
        self.published += 1
        sent = self.pending.get(tag or "")
        if sent is None:
            self.problem(f"a reading at {at:.1f} s tagged {tag} matches no telegram waiting (published twice, or never sent)")
            return
        sent.published += 1
        if sent.published > 1:
            self.problem(f"telegram {tag} ({sent.cause or 'clean'}) published {sent.published} times")
        else:
            sent.published_at = at

    def settle(self, before: float) -> None:
        while self.pending:
            tag, sent = next(iter(self.pending.items()))
            if sent.at >= before:
                return
            del self.pending[tag]
            cause = sent.cause or "clean"
            self.sent_by_cause[cause] += 1
            if sent.published:
                self.published_by_cause[cause] += 1
                if sent.cause is None and sent.published_at is not None:
                    self.max_latency = max(self.max_latency, sent.published_at - sent.at)
            elif sent.cause is None:
                self.problem(f"clean telegram {tag} sent at {sent.at:.1f} s was not published")

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("(more problems not listed)")


@dataclass
class Line:
    """One link's line; `open` is what the link's actor gets instead of opening its port."""

    name: str
    schedule: Schedule
    rng: random.Random
    meter_end: trio.abc.Stream | None = None
    opens: int = 0
    refused: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    answers: Counter[str] = field(default_factory=Counter)
    """A polled meter's answers, by the fault that touched them ("clean" when none)."""
    new_connection: trio.MemorySendChannel[trio.abc.Stream] | None = None
    """A polled meter's server (or a receiver answering set-up commands) is told of each connection here."""
    sending: trio.Lock = field(default_factory=trio.Lock)
    """Telegrams and a receiver's answers share the line."""

    def fault(self) -> Fault | None:
        window = self.schedule.active(self.name, trio.current_time())
        return window.fault if window is not None else None

    def hang_end(self) -> float | None:
        window = self.schedule.active(self.name, trio.current_time())
        return window.end if window is not None and window.fault is Fault.HANG else None

    async def open(self) -> trio.abc.Stream:
        if self.fault() is Fault.HANGUP:
            self.refused += 1
            raise TransportError(f"{self.name}: soak: the line is down")
        self.opens += 1
        ours, theirs = memory_link_pair()
        self.meter_end = theirs
        if self.new_connection is not None:
            self.new_connection.send_nowait(theirs)
        return LinkEnd(ours, self)

    async def hang_up(self) -> None:
        """The line goes away: the link reads end of file."""
        if self.meter_end is not None:
            await self.meter_end.aclose()
            self.meter_end = None

    async def push(self, telegram: bytes, tag: str, cause: Fault | None) -> None:
        """One telegram from a push meter, as the line and the schedule let it through."""
        fault = self.fault()
        if fault is Fault.BIT_FLIP:
            telegram = flip_bit(telegram, self.rng)
        elif fault is Fault.TRUNCATE:
            telegram = truncate(telegram, self.rng)
        touched = cause or (fault if fault in (Fault.BIT_FLIP, Fault.TRUNCATE, Fault.HANG, Fault.HANGUP) else None)
        if fault in (Fault.HANG, Fault.HANGUP) or self.meter_end is None:
            self.ledger.append(Sent(tag, trio.current_time(), touched.value if touched else LINK_DOWN))
            return
        try:
            async with self.sending:
                await self.meter_end.send_all(telegram)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.meter_end = None
            self.ledger.append(Sent(tag, trio.current_time(), touched.value if touched else LINK_DOWN))
            return
        self.ledger.append(Sent(tag, trio.current_time(), touched.value if touched else None))

    async def noise(self) -> None:
        if self.meter_end is not None:
            try:
                async with self.sending:
                    await self.meter_end.send_all(noise(self.rng))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.meter_end = None


class LinkEnd(trio.abc.Stream):
    """The link's side of the line: while the transport hangs, writes block until it recovers (and
    are lost) and what arrives is lost."""

    def __init__(self, inner: trio.abc.Stream, line: Line) -> None:
        self.inner, self.line = inner, line

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        end = self.line.hang_end()
        if end is not None:
            await trio.sleep_until(end)
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while True:
            data = await self.inner.receive_some(max_bytes)
            if not data or self.line.hang_end() is None:
                return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class MeterEnd(trio.abc.Stream):
    """A polled meter's side of the line: its answers go through the schedule's faults, and while
    it reboots (or the transport hangs) it hears nothing and says nothing."""

    def __init__(self, inner: trio.abc.Stream, line: Line) -> None:
        self.inner, self.line = inner, line

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        fault = self.line.fault()
        if fault in (Fault.REBOOT, Fault.HANG, Fault.HANGUP):
            self.line.answers[fault.value] += 1
            return
        if fault is Fault.BIT_FLIP:
            data = flip_bit(data, self.line.rng)
        elif fault is Fault.TRUNCATE:
            data = truncate(data, self.line.rng)
        self.line.answers[fault.value if fault in (Fault.BIT_FLIP, Fault.TRUNCATE) else "clean"] += 1
        await self.inner.send_all(data)
        if fault is Fault.NOISE:
            await self.inner.send_all(noise(self.line.rng))

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while True:
            data = await self.inner.receive_some(max_bytes)
            if not data or self.line.fault() not in (Fault.REBOOT, Fault.HANG):
                return data

    async def aclose(self) -> None:
        await self.inner.aclose()


async def push_meter(line: Line, interval: float, telegram: Callable[[datetime], bytes],
                     meter_clock: Callable[[], datetime], tag: Callable[[datetime], str],
                     key_fault: Callable[[], Fault | None]) -> None:
    """A push meter on its line: a telegram every interval, tagged by its clock's second; silent
    while it reboots; a noise burst half an interval after each telegram while the line is noisy."""
    next_push = trio.current_time()
    while True:
        await trio.sleep_until(next_push)
        if line.fault() is not Fault.REBOOT:
            now = meter_clock().replace(microsecond=0)
            await line.push(telegram(now), tag(now), key_fault())
            if line.fault() is Fault.NOISE:
                await trio.sleep_until(next_push + interval / 2)
                await line.noise()
        next_push += interval


async def serve_polled(line: Line, meter: Callable[[trio.abc.Stream], object]) -> None:
    """A polled meter: each connection the link opens is served by `meter` through the faults."""
    send, receive = trio.open_memory_channel[trio.abc.Stream](16)
    line.new_connection = send
    async with trio.open_nursery() as nursery:
        async for stream in receive:
            nursery.start_soon(meter, MeterEnd(stream, line))


async def answer_set_up(line: Line, answer: Callable[[bytes], bytes]) -> None:
    """A wireless M-Bus receiver's side of each connection: it answers the link's set-up commands
    (the telegrams it hears come through `push_meter`)."""
    send, receive = trio.open_memory_channel[trio.abc.Stream](16)
    line.new_connection = send

    async def serve(stream: trio.abc.Stream) -> None:
        try:
            while data := await stream.receive_some():
                if reply := answer(data):
                    async with line.sending:
                        await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async with trio.open_nursery() as nursery:
        async for stream in receive:
            nursery.start_soon(serve, stream)
