"""The image transfer actor: an ImageTransfer machine driving one driven DlmsClient session at a time.

The loop reads the meter's line while a session is open, feeds the DLMS client, hands the client's
`Associated` and `Answered` to the image transfer machine and the machine's requests back to the
client, and arms the deadlines of both machines. A session that ends (released, the link lost, no
answer) is closed; the machine decides whether and when to open the next (`Connect`). Ctrl-C stops
sending at once: the meter keeps the partial image for `--resume`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..machines.base import Dropped, Resync, Send
from ..machines.dlms import Answered, Associated, Association, DlmsClient, Framing
from ..machines.image_transfer import Connect, ImageTransfer, Progress, Record, Release, Request, TransferRecord
from ..protocols.hdlc import HdlcFramer
from ..protocols.wrapper import WrapperFramer
from ..transports import TransportError
from .link import RECEIVE_SIZE, Codec, Deadlines

log = logging.getLogger("meterlink.image")


@dataclass(frozen=True)
class ImageHooks:
    """Where the actor reports: progress after every step, the record to keep beside the image."""

    progress: Callable[[Progress], None] = lambda progress: None
    record: Callable[[TransferRecord | None], None] = lambda record: None
    dropped: Callable[[Dropped], None] = lambda drop: None


class _Session:
    """One DLMS session: an open stream, its framer, a driven client."""

    def __init__(self, stream: trio.abc.Stream, association: Association, response_timeout: float) -> None:
        self.stream = stream
        self.codec: Codec = HdlcFramer() if association.framing is Framing.HDLC else WrapperFramer()
        self.client = DlmsClient(association, driven=True, response_timeout=response_timeout)
        self.deadlines = Deadlines()


async def run_image_transfer(
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
    association: Association,
    machine: ImageTransfer,
    hooks: ImageHooks = ImageHooks(),
    response_timeout: float = 2.0,
) -> None:
    """Run the transfer until the machine ends: active and confirmed, failed, or interrupted."""
    deadlines = Deadlines()
    session: _Session | None = None
    machine.actions.append(Connect())
    try:
        while not machine.is_terminated:
            session = await _carry_out(machine, session, open_stream, association, response_timeout, hooks)
            if session is not None and session.client.is_terminated:
                await _close(session)
                session = None
                machine.session_closed()
                continue
            if machine.actions:
                continue
            hooks.progress(machine.progress())
            due = deadlines.earliest(machine)
            if session is None:
                await trio.sleep_until(due)
                machine.send(deadlines.fire())
                continue
            client_due = session.deadlines.earliest(session.client)
            data = None
            with trio.move_on_at(min(due, client_due)):
                data = await session.stream.receive_some(RECEIVE_SIZE)
            if data is None:
                if client_due <= due:
                    session.client.send(session.deadlines.fire())
                else:
                    machine.send(deadlines.fire())
            elif not data:
                session.client.send("link_lost")
            else:
                for event in session.codec.feed(data):
                    session.client.handle(event, None)
    except KeyboardInterrupt:
        if not machine.is_terminated:
            machine.send("interrupt")
        raise
    finally:
        if session is not None:
            await _close(session)
        hooks.progress(machine.progress())


async def _carry_out(
    machine: ImageTransfer,
    session: _Session | None,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
    association: Association,
    response_timeout: float,
    hooks: ImageHooks,
) -> _Session | None:
    """Do what both machines asked until neither asks anything more."""
    while True:
        busy = False
        for action in machine.take_actions():
            busy = True
            match action:
                case Connect():
                    if session is not None:
                        await _close(session)
                    session = await _open(open_stream, association, response_timeout)
                    if session is None:
                        machine.session_closed()
                case Request(ref) if session is not None:
                    session.client.request(ref)
                case Release() if session is not None:
                    session.client.release()
                case Record(record):
                    hooks.record(record)
        if session is not None:
            for action in session.client.take_actions():
                busy = True
                match action:
                    case Send(data):
                        try:
                            await session.stream.send_all(data)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            session.client.send("link_lost")
                    case Resync():
                        session.codec.reset()
                    case Associated() | Answered():
                        machine.handle(action)
                    case Dropped():
                        log.info("image transfer: dropped (%s): %s", action.cause, action.detail)
                        hooks.dropped(action)
        if not busy:
            return session


async def _open(open_stream: Callable[[], Awaitable[trio.abc.Stream]], association: Association,
                response_timeout: float) -> _Session | None:
    try:
        stream = await open_stream()
    except (OSError, TransportError) as error:
        log.info("image transfer: cannot open the link: %s", error)
        return None
    return _Session(stream, association, response_timeout)


async def _close(session: _Session) -> None:
    with trio.CancelScope(shield=True):
        try:
            await session.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
