"""The image transfer actor against the simulated Kamstrup meter over in-memory links, on trio's
MockClock: every (re)connection gets a fresh line to the same meter model, as the TCP simulator
gives each connection a meter of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio
import trio.testing

from meterlink.actors.image_transfer import ImageHooks, run_image_transfer
from meterlink.machines.dlms import Association
from meterlink.machines.image_transfer import Image, ImageTransfer, Progress, TransferRecord
from meterlink.simulators.image_transfer import Faults, ImageTransferServer
from meterlink.simulators.kamstrup import OMNIPOWER_MAX_RECEIVE_PDU, KamstrupMeterModel, run_kamstrup_meter

PASSWORD = b"12345"
NOW = datetime(2026, 11, 29, 12, 0, 0)


def meter(faults: Faults = Faults(), block_size: int = 985, **options) -> KamstrupMeterModel:
    return KamstrupMeterModel(wallclock=lambda: NOW, max_receive_pdu=OMNIPOWER_MAX_RECEIVE_PDU,
                              image=ImageTransferServer(faults, block_size=block_size), **options)


@dataclass
class Run:
    machine: ImageTransfer
    model: KamstrupMeterModel
    seconds: float = 0.0
    connections: int = 0
    progress: list[Progress] = field(default_factory=list)
    records: list[TransferRecord | None] = field(default_factory=list)


def transfer(image: Image, model: KamstrupMeterModel, interrupt_after_blocks: int | None = None,
             record: TransferRecord | None = None, clock: trio.testing.MockClock | None = None,
             between_steps: Callable[[Progress], None] = lambda now: None, **options) -> Run:
    """One `meterlink image-transfer` against `model`; `interrupt_after_blocks` presses Ctrl-C
    (cancels the actor) once that many blocks were sent; `between_steps` is called after each step."""
    machine = ImageTransfer(image, meter="sim", record=record, **options)
    run = Run(machine, model)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            async def open_stream() -> trio.abc.Stream:
                client, server = trio.testing.memory_stream_pair()
                run.connections += 1

                async def serve() -> None:
                    async with server:
                        await run_kamstrup_meter(server, model)
                nursery.start_soon(serve)
                return client

            def progress(now: Progress) -> None:
                run.progress.append(now)
                between_steps(now)
                if interrupt_after_blocks is not None and now.sent >= interrupt_after_blocks and not machine.is_terminated:
                    raise KeyboardInterrupt

            start = trio.current_time()
            try:
                await run_image_transfer(open_stream, Association(password=PASSWORD), machine,
                                         ImageHooks(progress, run.records.append))
            except KeyboardInterrupt:
                pass
            run.seconds = trio.current_time() - start
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock or trio.testing.MockClock(autojump_threshold=0))
    return run
